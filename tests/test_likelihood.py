"""Monte Carlo ELBO and confidence scoring, on toy models whose exact answers are known."""
import math

import pytest
import torch

from illada_eval.model import confidence_score, elbo_loglikelihood, elbo_mask_plan, generate
from illada_eval.model.masking import stratified_mask_counts, tiled_subsets

from toy_models import ContextToy, UnigramToy, enumerated_elbo

MASK = 9
UNIGRAM = [0.05, 0.1, 0.2, 0.15, 0.02, 0.08, 0.12, 0.18, 0.1, 0.0]  # mask id 9 gets 0

PROMPTS = [[1, 2, 3], [4], [], [5, 6, 7, 8, 1, 2], [3, 3]]
CONTINUATIONS = [[5, 6, 7], [2, 3, 1, 1, 5], [3, 8], [0, 4, 2, 6, 1, 7], [7]]


def test_stratified_counts_are_each_uniform():
    for length, group in [(3, 2), (5, 4), (6, 4), (7, 32), (4, 8)]:
        by_offset = torch.stack([stratified_mask_counts(length, group, k) for k in range(1, length + 1)])
        # Over the uniform offset every draw j takes every count 1..L exactly once.
        for j in range(group):
            assert sorted(by_offset[:, j].tolist()) == list(range(1, length + 1))
        assert stratified_mask_counts(length, group, 1).min() >= 1


def test_mask_plan_weights_and_shapes():
    generator = torch.Generator().manual_seed(0)
    masks, weights = elbo_mask_plan(7, mc_num=64, mc_batch_size=16, generator=generator)
    assert masks.shape[1] == 7 and masks.any(dim=1).all()
    assert len(torch.unique(masks, dim=0)) == len(masks)  # merged duplicates
    # Weights are L / l / mc_num per draw, so they sum to E[L / l] over the stratified counts.
    assert weights.sum().item() == pytest.approx(sum(7 / l for l in range(1, 8)) / 7, rel=0.05)
    with pytest.raises(ValueError, match="multiple"):
        elbo_mask_plan(7, mc_num=60, mc_batch_size=16, generator=generator)
    with pytest.raises(ValueError, match="even"):
        elbo_mask_plan(7, mc_num=9, mc_batch_size=3, generator=generator, mask_sampling="antithetic")
    with pytest.raises(ValueError, match="mask_sampling"):
        elbo_mask_plan(7, mc_num=8, mc_batch_size=8, generator=generator, mask_sampling="sobol")


def test_tiled_subsets_have_their_sizes_and_balance_positions():
    generator = torch.Generator().manual_seed(1)
    counts = stratified_mask_counts(6, 12, 4)
    masks = tiled_subsets(counts, 6, generator)
    assert torch.equal(masks.sum(dim=1), counts)
    coverage = masks.sum(dim=0)  # 42 masked slots over 6 positions, laid end to end: 7 each
    assert coverage.tolist() == [7] * 6
    # Marginally each row is a uniform subset of its size.
    first_rows = torch.stack([tiled_subsets(counts, 6, generator)[0] for _ in range(3000)])
    rate = first_rows.double().mean(dim=0)
    assert ((rate - counts[0] / 6).abs() < 0.04).all()


@pytest.mark.parametrize("mc_num", [1, 2, 8, 32, 128])
@pytest.mark.parametrize("mask_sampling", ["llada", "antithetic", "balanced"])
def test_unigram_elbo_is_exact_where_every_draw_is(mc_num, mask_sampling):
    """Context-free toy: a one-token continuation, or one whose tokens share a probability, is
    scored exactly by every single draw, so by every mc_num."""
    if mask_sampling == "antithetic" and mc_num == 1:
        pytest.skip("antithetic draws come in pairs")
    model = UnigramToy(UNIGRAM, mask_id=MASK)
    continuations = [[2], [5, 5, 5, 5], [1, 8, 1, 8, 8]]  # tokens 1 and 8 share probability 0.1
    scores = elbo_loglikelihood(model, [[4, 4], [], [1]], continuations, mask_id=MASK,
                                mc_num=mc_num, mc_batch_size=min(mc_num, 8),
                                mask_sampling=mask_sampling)
    for score, continuation in zip(scores, continuations):
        assert score == pytest.approx(model.exact_loglikelihood(continuation), rel=1e-6)


def test_unigram_bound_is_the_exact_loglikelihood_and_estimator_converges():
    model = UnigramToy(UNIGRAM, mask_id=MASK)
    continuation = [0, 2, 4, 7, 1]
    exact = model.exact_loglikelihood(continuation)
    assert enumerated_elbo(model, [3], continuation, MASK) == pytest.approx(exact, rel=1e-12)
    runs = torch.tensor([elbo_loglikelihood(model, [[3]], [continuation], mask_id=MASK, mc_num=8,
                                            mc_batch_size=8, seed=s)[0] for s in range(100)])
    assert abs(runs.mean().item() - exact) < 4 * runs.std().item() / math.sqrt(len(runs))


def test_unigram_confidence_score_is_exact():
    model = UnigramToy(UNIGRAM, mask_id=MASK)
    scores = confidence_score(model, PROMPTS, CONTINUATIONS, mask_id=MASK)
    for score, continuation in zip(scores, CONTINUATIONS):
        assert score == pytest.approx(model.exact_loglikelihood(continuation), rel=1e-6)


@pytest.mark.parametrize("mask_sampling", ["llada", "antithetic", "balanced"])
def test_context_elbo_mean_converges_to_enumerated_bound(mask_sampling):
    model = ContextToy(mask_id=MASK, seed=1)
    pairs = list(zip(PROMPTS, CONTINUATIONS))[:4]  # continuation lengths 3, 5, 2, 6
    bounds = torch.tensor([enumerated_elbo(model, p, c, MASK) for p, c in pairs])
    runs = torch.tensor([
        elbo_loglikelihood(model, [p for p, _ in pairs], [c for _, c in pairs], mask_id=MASK,
                           mc_num=8, mc_batch_size=4, seed=seed, mask_sampling=mask_sampling)
        for seed in range(100)
    ])
    stderr = runs.std(dim=0) / math.sqrt(len(runs))
    # 1e-4 covers float32 rounding where a pair's estimate has no variance at all (L = 2).
    assert ((runs.mean(dim=0) - bounds).abs() < 4 * stderr + 1e-4).all(), (runs.mean(0), bounds, stderr)


def test_lower_variance_designs_beat_independent_subsets():
    model = ContextToy(mask_id=MASK, seed=1)
    prompt, continuation = PROMPTS[3], CONTINUATIONS[3]

    def spread(mask_sampling):
        return torch.tensor([
            elbo_loglikelihood(model, [prompt], [continuation], mask_id=MASK, mc_num=8,
                               mc_batch_size=8, seed=s, mask_sampling=mask_sampling)[0]
            for s in range(80)
        ]).std().item()

    llada = spread("llada")
    assert spread("antithetic") < llada and spread("balanced") < llada


def test_single_token_continuation_is_exact_in_one_pass():
    model = ContextToy(mask_id=MASK, seed=2)
    prompts, continuations = [[1, 2], [3, 4, 5, 6], []], [[7], [0], [4]]
    scores = elbo_loglikelihood(model, prompts, continuations, mask_id=MASK, mc_num=128)
    assert model.calls == 1
    for score, prompt, continuation in zip(scores, prompts, continuations):
        logits = model(torch.tensor([prompt + [MASK]]), None)
        expected = torch.log_softmax(logits[0, -1], dim=-1)[continuation[0]].item()
        assert score == pytest.approx(expected, rel=1e-5)


def test_classifier_free_guidance_on_single_token():
    model = ContextToy(mask_id=MASK, seed=3)
    prompt, token, scale = [1, 2, 3], 6, 0.5
    cond = model(torch.tensor([prompt + [MASK]]), None)[0, -1]
    uncond = model(torch.tensor([[MASK] * len(prompt) + [MASK]]), None)[0, -1]
    guided = uncond + (scale + 1) * (cond - uncond)
    expected = torch.log_softmax(guided, dim=-1)[token].item()
    got = elbo_loglikelihood(model, [prompt], [[token]], mask_id=MASK, cfg_scale=scale)[0]
    assert got == pytest.approx(expected, rel=1e-5)
    # Without a prompt guidance changes nothing.
    plain = elbo_loglikelihood(model, [[]], [[2, 5]], mask_id=MASK, mc_num=16, mc_batch_size=8)
    guided_empty = elbo_loglikelihood(model, [[]], [[2, 5]], mask_id=MASK, mc_num=16,
                                      mc_batch_size=8, cfg_scale=2.0)
    assert plain == pytest.approx(guided_empty, rel=1e-6)


@pytest.mark.parametrize("cfg_scale", [0.0, 1.0])
def test_batching_invariance(cfg_scale):
    model = ContextToy(mask_id=MASK, seed=4)
    batched_elbo = elbo_loglikelihood(model, PROMPTS, CONTINUATIONS, mask_id=MASK, mc_num=16,
                                      mc_batch_size=8, seed=7, batch_size=5, cfg_scale=cfg_scale)
    batched_conf = confidence_score(model, PROMPTS, CONTINUATIONS, mask_id=MASK, batch_size=4,
                                    return_greedy=True, cfg_scale=cfg_scale)
    for i in reversed(range(len(PROMPTS))):  # another order, alone
        alone = elbo_loglikelihood(model, [PROMPTS[i]], [CONTINUATIONS[i]], mask_id=MASK,
                                   mc_num=16, mc_batch_size=8, seed=7, cfg_scale=cfg_scale)
        assert alone[0] == pytest.approx(batched_elbo[i], rel=1e-6, abs=1e-6)
        score, greedy = confidence_score(model, [PROMPTS[i]], [CONTINUATIONS[i]], mask_id=MASK,
                                         return_greedy=True, cfg_scale=cfg_scale)[0]
        assert score == pytest.approx(batched_conf[i][0], rel=1e-6, abs=1e-6)
        assert greedy == batched_conf[i][1]


def test_real_network_scores_do_not_depend_on_the_batch():
    from tiny import tiny_model

    model = tiny_model(seed=1)
    mask_id = model.config.mask_token_id
    prompts = [[10, 11, 12, 13], [20], [30, 31, 32, 33, 34, 35]]
    continuations = [[40, 41, 42], [50, 51, 52, 53], [60]]
    elbo = elbo_loglikelihood(model, prompts, continuations, mask_id=mask_id, mc_num=16,
                              mc_batch_size=8, mask_sampling="balanced", cfg_scale=0.5)
    confidence = confidence_score(model, prompts, continuations, mask_id=mask_id)
    for i, (prompt, continuation) in enumerate(zip(prompts, continuations)):
        alone = elbo_loglikelihood(model, [prompt], [continuation], mask_id=mask_id, mc_num=16,
                                   mc_batch_size=8, mask_sampling="balanced", cfg_scale=0.5)
        assert alone[0] == pytest.approx(elbo[i], rel=1e-5)
        alone = confidence_score(model, [prompt], [continuation], mask_id=mask_id)
        assert alone[0] == pytest.approx(confidence[i], rel=1e-5)


@pytest.mark.parametrize("cfg_scale", [0.0, 0.5])
def test_only_masked_continuation_positions_are_projected(cfg_scale):
    from tiny import full_projection, projected_rows, tiny_model

    model = tiny_model(seed=1)
    mask_id = model.config.mask_token_id
    prompts = [[10, 11, 12, 13], [20], [30, 31, 32, 33, 34, 35]]
    continuations = [[40, 41, 42], [50, 51, 52, 53], [60]]
    settings = dict(mask_id=mask_id, cfg_scale=cfg_scale, batch_size=8)
    elbo = lambda m: elbo_loglikelihood(m, prompts, continuations, mc_num=8, mc_batch_size=8, **settings)
    confidence = lambda m: confidence_score(m, prompts, continuations, return_greedy=True, **settings)
    full_elbo, full_confidence = elbo(full_projection(model)), confidence(full_projection(model))
    rows = projected_rows(model)
    part_elbo = elbo(model)
    # each draw masks at most its continuation; a full projection is 8 sequences x 10 columns
    assert sum(rows) <= (2 if cfg_scale else 1) * 8 * sum(map(len, continuations))
    assert max(rows) < 8 * 10
    rows.clear()
    part_confidence = confidence(model)
    # all three pairs share the calls; each projects the still-masked positions of its pairs
    masked_per_pass = [3 + 4 + 1, 2 + 3, 1 + 2, 1]
    assert rows == [(2 if cfg_scale else 1) * n for n in masked_per_pass]
    for part, full in zip(part_elbo, full_elbo):
        assert part == pytest.approx(full, rel=0, abs=1e-5), f"ELBO {part} vs {full}"
    for (score, greedy), (full_score, full_greedy) in zip(part_confidence, full_confidence):
        assert score == pytest.approx(full_score, rel=0, abs=1e-6), f"confidence {score} vs {full_score}"
        assert greedy == full_greedy


def test_seed_determines_the_numbers():
    model = ContextToy(mask_id=MASK, seed=4)
    run = lambda seed: elbo_loglikelihood(model, PROMPTS, CONTINUATIONS, mask_id=MASK,
                                          mc_num=8, mc_batch_size=4, seed=seed)
    first = run(0)
    assert run(0) == first
    assert run(1) != first


def _reference_confidence(model, prompt, continuation):
    """The confidence rule written plainly, one pair and one position at a time."""
    canvas = list(prompt) + [MASK] * len(continuation)
    masked, score, greedy = set(range(len(continuation))), 0.0, True
    while masked:
        logits = model(torch.tensor([canvas]), None)[0].double()
        own = lambda i: torch.log_softmax(logits[len(prompt) + i], -1)[continuation[i]].item()
        best = max(masked, key=lambda i: (own(i), -i))  # ties: the leftmost
        row = logits[len(prompt) + best]
        score += torch.log_softmax(row, -1)[continuation[best]].item()
        greedy &= int(row.argmax()) == continuation[best]
        canvas[len(prompt) + best] = continuation[best]
        masked.remove(best)
    return score, greedy


def test_confidence_score_matches_plain_reference_and_counts_passes():
    model = ContextToy(mask_id=MASK, seed=5)
    results = confidence_score(model, PROMPTS, CONTINUATIONS, mask_id=MASK, return_greedy=True)
    assert model.calls == max(len(c) for c in CONTINUATIONS)  # one batch: all pairs together
    for (score, greedy), prompt, continuation in zip(results, PROMPTS, CONTINUATIONS):
        ref_score, ref_greedy = _reference_confidence(model, prompt, continuation)
        assert score == pytest.approx(ref_score, rel=1e-5)
        assert greedy == ref_greedy
    assert confidence_score(model, [[1]], [[]], mask_id=MASK, return_greedy=True) == [(0.0, True)]


def test_greedy_flag_true_for_the_models_own_greedy_decode():
    model = ContextToy(mask_id=MASK, seed=6)
    prompt = [1, 4, 2]
    # One token per step over one block: each step reveals the single most confident position.
    decoded = generate(model, [prompt], mask_id=MASK, gen_length=5, block_length=5, steps=5).tokens[0]
    assert len(decoded) == 5
    (_, greedy), = confidence_score(model, [prompt], [decoded], mask_id=MASK, return_greedy=True)
    assert greedy
    changed = decoded[:2] + [(decoded[2] + 1) % MASK] + decoded[3:]
    (_, greedy), = confidence_score(model, [prompt], [changed], mask_id=MASK, return_greedy=True)
    assert not greedy


def test_empty_and_mismatched_inputs():
    model = ContextToy(mask_id=MASK)
    assert elbo_loglikelihood(model, [[1, 2]], [[]], mask_id=MASK) == [0.0]
    assert elbo_loglikelihood(model, [], [], mask_id=MASK) == []
    with pytest.raises(ValueError, match="one continuation per prompt"):
        elbo_loglikelihood(model, [[1], [2]], [[3]], mask_id=MASK)
    with pytest.raises(ValueError, match="mc_batch_size"):
        elbo_loglikelihood(model, [[1]], [[3, 4]], mask_id=MASK, mc_num=12, mc_batch_size=8)
