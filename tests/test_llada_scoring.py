"""LLaDA's likelihood side against plain transcriptions of its eval_llada.py: the ELBO in the
model's own dtype (``official_numerics``) and LLaDA's ``is_greedy`` rule (``greedy_rule=llada``),
ties included, in the library and through the lm-eval backend."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance

from illada_eval.adapter import DiffusionLM
from illada_eval.model import confidence_score, elbo_loglikelihood, elbo_mask_plan, llada_is_greedy
from illada_eval.model.masking import derive_seed, seeded_generator

from lm_eval_fixtures import MASK_ID, VOCAB, char_tokenizer, one_torch_thread  # noqa: F401  (fixture)
from tiny import row_by_row, tiny_model
from toy_models import ContextToy, RuleToy

MASK, V = 9, 10
UNIT = 2.0**-24  # float32's unit roundoff


def llada_get_logits(model, batch, prompt_index, mask_id, cfg):
    """eval_llada.py's get_logits: guidance in the dtype the model returns."""
    if cfg > 0:
        un_batch = batch.clone()
        un_batch[:, prompt_index] = mask_id
        batch = torch.cat([batch, un_batch])
    logits = model(batch, None)
    if cfg > 0:
        logits, un_logits = torch.chunk(logits, 2, dim=0)
        logits = un_logits + (cfg + 1) * (logits - un_logits)
    return logits


def llada_get_loglikelihood(model, prefix, target, mini_batches, *, mask_id, cfg):
    """eval_llada.py's get_loglikelihood written out plainly, its random masks replaced by the
    given mini-batches of continuation masks (bool ``[b, len(target)]``): the cross-entropy in
    the logits' dtype, divided by the float32 mask ratio, summed per mini-batch in float32."""
    seq = torch.tensor(list(prefix) + list(target))
    prompt_index = torch.arange(len(seq)) < len(prefix)
    loss_acc = []
    for target_mask in mini_batches:
        b = len(target_mask)
        batch = seq.repeat(b, 1)
        is_mask = torch.cat([torch.zeros(b, len(prefix), dtype=torch.bool), target_mask], dim=1)
        perturbed = torch.where(is_mask, mask_id, batch)
        p_mask = (target_mask.sum(dim=1) / len(target))[:, None].repeat(1, len(seq))
        mask_indices = perturbed == mask_id
        logits = llada_get_logits(model, perturbed, prompt_index, mask_id, cfg)
        loss = F.cross_entropy(logits[mask_indices], batch[mask_indices], reduction="none") / p_mask[mask_indices]
        loss_acc.append((loss.sum() / b).item())
    return -sum(loss_acc) / len(loss_acc)


def llada_suffix_greedy_prediction(model, prefix, target, *, mask_id, cfg):
    """eval_llada.py's suffix_greedy_prediction written out plainly for one pair."""
    seq = torch.full((1, len(prefix) + len(target)), mask_id)
    prompt_index = torch.arange(seq.shape[1]) < len(prefix)
    seq[0, : len(prefix)] = torch.tensor(prefix, dtype=torch.long)
    for _ in range(len(target)):
        mask_index = seq == mask_id
        logits = llada_get_logits(model, seq, prompt_index, mask_id, cfg)[mask_index]
        x0 = torch.argmax(logits, dim=-1)
        p = torch.softmax(logits.to(torch.float32), dim=-1)
        confidence = torch.gather(p, dim=-1, index=x0[:, None])[:, 0]
        _, index = torch.sort(confidence, descending=True)
        x0[index[1:]] = mask_id
        seq[mask_index] = x0.clone()
    return bool((seq[0, len(prefix):] == torch.tensor(target)).all())


def plan_mini_batches(prompt, continuation, *, seed, mc_num, mc_batch_size):
    """The draws elbo_loglikelihood makes for this pair, one row per draw again (the plan merges
    identical draws, adding their weights L / l / mc_num), in mini-batches of mc_batch_size."""
    generator = seeded_generator(derive_seed(seed, prompt, continuation))
    masks, weights = elbo_mask_plan(len(continuation), mc_num=mc_num, mc_batch_size=mc_batch_size,
                                    generator=generator)
    copies = (weights * masks.sum(dim=1) * mc_num / len(continuation)).round().long()
    assert int(copies.sum()) == mc_num
    return masks.repeat_interleave(copies, dim=0).split(mc_batch_size)


# ------------------------------------------------------------------ ELBO official numerics

@pytest.mark.parametrize("cfg", [0.0, 0.5])
def test_official_elbo_in_bfloat16_is_llada_get_loglikelihood_on_the_same_masks(cfg):
    """Fed the same masks, LLaDA's estimate and ours add the same bf16-rounded cross-entropies;
    they differ only where LLaDA divides by the float32 mask ratio and sums a mini-batch in
    float32 (ours: float64), at most (terms + 3) float32 roundings of the estimate."""
    network = tiny_model(seed=1).to(torch.bfloat16)
    model, mask = row_by_row(network), network.config.mask_token_id
    generator = torch.Generator().manual_seed(0)
    prompts = [torch.randint(6, network.config.vocab_size, (n,), generator=generator).tolist() for n in (3, 1, 5, 2)]
    continuations = [torch.randint(6, network.config.vocab_size, (n,), generator=generator).tolist()
                     for n in (1, 6, 3, 4)]
    draws = dict(mc_num=16, mc_batch_size=8)
    common = dict(mask_id=mask, cfg_scale=cfg, seed=3, batch_size=12, **draws)
    official = elbo_loglikelihood(model, prompts, continuations, official_numerics=True, **common)
    default = elbo_loglikelihood(model, prompts, continuations, **common)
    gaps = []
    for prompt, continuation, ours, plain in zip(prompts, continuations, official, default):
        expected = llada_get_loglikelihood(model, prompt, continuation, plan_mini_batches(
            prompt, continuation, seed=3, **draws), mask_id=mask, cfg=cfg)
        tolerance = (draws["mc_batch_size"] * len(continuation) + 3) * UNIT * abs(expected)
        assert abs(ours - expected) <= tolerance, (
            f"continuation {continuation}: {ours} vs LLaDA's {expected}, off by {abs(ours - expected):.3g} > {tolerance:.3g}")
        gaps.append(abs(plain - expected) / tolerance)
    assert max(gaps) > 10, f"float32 log-probabilities came within {max(gaps):.2g} tolerances of LLaDA's bf16 ones"


def test_official_numerics_change_nothing_for_a_float32_model():
    model = row_by_row(tiny_model(seed=2))
    prompts, continuations = [[10, 11], [20]], [[30, 31, 32], [40, 41]]
    common = dict(mask_id=5, mc_num=8, mc_batch_size=4, cfg_scale=0.5, seed=1)
    assert (elbo_loglikelihood(model, prompts, continuations, official_numerics=True, **common)
            == elbo_loglikelihood(model, prompts, continuations, **common))


# ------------------------------------------------------------------ LLaDA's is_greedy

@pytest.mark.parametrize("cfg", [0.0, 1.0])
def test_llada_is_greedy_is_suffix_greedy_prediction_where_the_rules_disagree(cfg):
    """Every two-token continuation of three prompts on a context-dependent toy: exactly one per
    prompt is LLaDA-greedy (the model's own greedy decoding); the reveal rule says yes to more."""
    model = ContextToy(mask_id=MASK, seed=7)
    prompts = [[1, 2, 3], [4], [5, 6]]
    pairs = [(prompt, list(tail)) for prompt in prompts for tail in itertools.product(range(MASK), repeat=2)]
    expected = [llada_suffix_greedy_prediction(model, p, c, mask_id=MASK, cfg=cfg) for p, c in pairs]
    assert sum(expected) == len(prompts)
    for official in (False, True):
        flags = llada_is_greedy(model, [p for p, _ in pairs], [c for _, c in pairs], mask_id=MASK, cfg_scale=cfg,
                                batch_size=64, official_numerics=official)
        wrong = [pair for pair, got, want in zip(pairs, flags, expected) if got != want]
        assert not wrong, f"official_numerics={official}: flags differ from LLaDA's for {wrong}"
    reveal = [flag for _, flag in confidence_score(model, [p for p, _ in pairs], [c for _, c in pairs],
                                                   mask_id=MASK, cfg_scale=cfg, return_greedy=True)]
    only_reveal = [pair for pair, ours, llada in zip(pairs, reveal, expected) if ours and not llada]
    assert only_reveal, "the two rules agree on every pair: the toy shows nothing"
    assert all(ours for ours, llada in zip(reveal, expected) if llada)


def first_reveal_rule(tokens):
    """Until a position after the first holds a token, every position proposes 3, all equally
    confident; then every position proposes 4."""
    logits = torch.zeros(len(tokens), V)
    logits[:, 3 if bool((tokens[1:] == MASK).all()) else 4] = 2.0
    return logits


@pytest.mark.parametrize("cfg", [0.0, 0.5])
def test_llada_is_greedy_breaks_ties_as_torch_sort_does(cfg):
    """17 equally confident positions: LLaDA's code writes the first proposal where torch.sort
    puts it first (on the CPU not the leftmost position at this length), and the flag depends
    on where that is. A pair leaves the batch at its first wrong token."""
    toy = RuleToy(first_reveal_rule, V, MASK, record=True)
    targets = [[3] + [4] * 16, [4] * 8 + [3] + [4] * 8]
    expected = [llada_suffix_greedy_prediction(toy, [1], target, mask_id=MASK, cfg=cfg) for target in targets]
    leftmost = [target[0] == 3 for target in targets]
    assert expected != leftmost, "torch.sort put the tied positions in order: the test cannot tell the tie rules apart"
    toy.inputs.clear()
    assert llada_is_greedy(toy, [[1], [1]], targets, mask_id=MASK, cfg_scale=cfg) == expected
    copies = 2 if cfg else 1
    assert [len(ids) for ids, _ in toy.inputs] == [2 * copies] + [sum(expected) * copies] * 16
    reveal = confidence_score(toy, [[1], [1]], targets, mask_id=MASK, cfg_scale=cfg, return_greedy=True)
    assert [flag for _, flag in reveal] == [True, True]


# ------------------------------------------------------------------ through the lm-eval backend

def scripted_rule(tokenizer):
    """After the last "=": the first position proposes "a" (logit 2); the second proposes "x"
    (logit 4, the most confident) until the first holds "a", then "b" (logit 3)."""
    a, b, x, equals = (tokenizer.convert_tokens_to_ids(c) for c in "abx=")

    def rule(tokens):
        logits = torch.zeros(len(tokens), VOCAB)
        ends = (tokens == equals).nonzero()[:, 0]
        if len(ends) and int(ends[-1]) + 2 < len(tokens):
            first = int(ends[-1]) + 1
            logits[first, a] = 2.0
            if int(tokens[first]) == a:
                logits[first + 1, b] = 3.0
            else:
                logits[first + 1, x] = 4.0
        return logits

    return rule


def loglikelihood_requests(pairs):
    return [Instance("loglikelihood", doc={}, arguments=pair, idx=i, metadata=("t", i, 1)) for i, pair in enumerate(pairs)]


@pytest.mark.parametrize("scoring", ["elbo", "confidence"])
def test_loglikelihood_returns_the_flag_of_the_chosen_rule(scoring):
    """"ab" is the reveal rule's greedy answer ("a" first, then "b" is top) but not LLaDA's (the
    free decoding writes "x" first); "ax" is both; "ba" neither."""
    tokenizer = char_tokenizer()
    toy = RuleToy(scripted_rule(tokenizer), VOCAB, MASK_ID)
    requests = loglikelihood_requests([("q=", "ab"), ("q=", "ax"), ("q=", "ba")])

    def flags(**settings):
        lm = DiffusionLM(pretrained=toy, tokenizer=tokenizer, mask_id=MASK_ID, scoring=scoring, mc_num=4,
                         mc_batch_size=4, **settings)
        return [flag for _, flag in lm.loglikelihood(requests)]

    def calls(**settings):
        before = toy.calls
        flags(**settings)
        return toy.calls - before

    assert flags() == [True, True, False]  # reveal, the default
    assert flags(greedy_rule="llada") == [False, True, False]
    # the unconditional copy sees no "=", so guidance doubles the logits: the same order
    assert flags(greedy_rule="llada", cfg_scale=1.0) == [False, True, False]
    assert flags(greedy=False) == flags(greedy=False, greedy_rule="llada") == [False] * 3
    # greedy=false saves the rule's passes (the reveal rule's come with confidence scoring)
    assert calls(greedy=False) < calls(greedy_rule="llada")
    assert (calls(greedy=False) < calls()) is (scoring == "elbo")
    with pytest.raises(ValueError, match="greedy_rule must be one of reveal, llada, got 'LLaDA'"):
        DiffusionLM(pretrained=toy, tokenizer=tokenizer, mask_id=MASK_ID, greedy_rule="LLaDA")


def test_official_numerics_reach_the_elbo_of_loglikelihood_and_rolling():
    tokenizer = char_tokenizer()
    network = tiny_model(seed=3, vocab_size=VOCAB, mask_token_id=MASK_ID, max_position_embeddings=128).to(torch.bfloat16)
    model = row_by_row(network)
    pairs = [("copy #12=", "12"), ("x", "hello"), ("q: 3+4=", " 7")]
    settings = dict(pretrained=model, tokenizer=tokenizer, mask_id=MASK_ID, max_length=16, scoring="elbo", mc_num=8,
                    mc_batch_size=4, greedy=False, seed=5)
    official_lm, default_lm = DiffusionLM(official_numerics=True, **settings), DiffusionLM(**settings)
    official = [score for score, _ in official_lm.loglikelihood(loglikelihood_requests(pairs))]
    default = [score for score, _ in default_lm.loglikelihood(loglikelihood_requests(pairs))]
    encoded = [official_lm._encode_request(*pair) for pair in pairs]
    direct = elbo_loglikelihood(model, [c for c, _ in encoded], [t for _, t in encoded], mask_id=MASK_ID, mc_num=8,
                                mc_batch_size=4, seed=5, official_numerics=True)
    assert official == pytest.approx(direct, rel=1e-12)
    assert official != pytest.approx(default, rel=1e-6)
    text = [Instance("loglikelihood_rolling", doc={}, arguments=("the quick brown fox jumps",), idx=0,
                     metadata=("t", 0, 1))]
    rolling_official, rolling_default = official_lm.loglikelihood_rolling(text)[0], default_lm.loglikelihood_rolling(text)[0]
    # the same estimate with other roundings: close, not equal
    assert rolling_official != rolling_default
    assert rolling_official == pytest.approx(rolling_default, rel=1e-2)
