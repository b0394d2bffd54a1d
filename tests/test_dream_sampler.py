"""Dream's sampler: the time-grid schedule, the reveal order of each alg, sampling filters."""
import math

import pytest
import torch

from illada_eval.model.dream_sampler import (
    dream_generate,
    dream_proposals,
    filter_logits,
    reveal_count,
    time_grid,
)

from toy_models import ContextToy

MASK = 5
VOCAB = 6
ZERO = -1.0e4  # a logit whose probability is 0 in float64

# the distributions of the four generated positions over tokens 0..4 (the mask token: 0);
# position -> (top-1 token, distribution)
DISTRIBUTIONS = [
    {1: 0.7, 0: 0.3},  # top-1 0.70, margin 0.40, negative entropy -0.611
    {2: 0.6, 0: 0.1, 1: 0.1, 3: 0.1, 4: 0.1},  # top-1 0.60, margin 0.50, negative entropy -1.228
    {3: 0.55, 0: 0.45},  # top-1 0.55, margin 0.10, negative entropy -0.688
    {4: 0.5, 0: 0.49, 1: 0.01},  # top-1 0.50, margin 0.01, negative entropy -0.742
]
GREEDY = [1, 2, 3, 4]


class FixedTailToy:
    """Context-free logits: the last four columns get DISTRIBUTIONS, the others uniform.
    Records each canvas it is called with."""

    def __init__(self):
        table = torch.full((len(DISTRIBUTIONS), VOCAB), ZERO, dtype=torch.float64)
        for position, distribution in enumerate(DISTRIBUTIONS):
            for token, probability in distribution.items():
                table[position, token] = math.log(probability)
        self.table = table
        self.canvases = []

    def __call__(self, input_ids, attention_mask=None):
        self.canvases.append(input_ids.clone())
        logits = torch.zeros(*input_ids.shape, VOCAB, dtype=torch.float64)
        logits[:, -len(DISTRIBUTIONS):] = self.table
        return logits


def test_time_grid_schedule_by_hand():
    grid = time_grid(4, 1e-3)
    assert torch.allclose(grid, torch.tensor([1.0, 0.75025, 0.5005, 0.25075, 0.001]), rtol=0, atol=1e-7)
    # 4 * (1 - 0.75025) = 0.999 -> 0; 4 * (1 - 0.5005 / 0.75025) = 1.33 -> 1;
    # 3 * (1 - 0.25075 / 0.5005) = 1.497 -> 1; the last step reveals the remaining 2
    counts, left = [], 4
    for step in range(4):
        count = reveal_count(left, grid[step], grid[step + 1], step == 3)
        counts.append(count)
        left -= count
    assert counts == [0, 1, 1, 2]


# positions revealed at each model call (the first step reveals none and is skipped)
ORDERS = {
    "maskgit_plus": [{0}, {1}, {2, 3}],  # top-1: 0.70, 0.60, 0.55, 0.50
    "topk_margin": [{1}, {0}, {2, 3}],  # margin: 0.50, 0.40, 0.10, 0.01
    "entropy": [{0}, {2}, {3, 1}],  # negative entropy: -0.611, -0.688, -0.742, -1.228
}


@pytest.mark.parametrize("alg", sorted(ORDERS))
@pytest.mark.parametrize("alg_temp", [None, 1e-4])
def test_reveal_order_of_each_alg_at_temperature_zero(alg, alg_temp):
    toy = FixedTailToy()
    out = dream_generate(toy, [[0, 1]], mask_id=MASK, max_new_tokens=4, steps=4, alg=alg,
                         alg_temp=alg_temp)
    assert out.tokens == [GREEDY] and out.nfe == 3 and out.nfe_per_sequence == [3]
    revealed = [set()]
    for canvas in toy.canvases[1:] + [torch.tensor([[0, 1] + GREEDY])]:
        revealed.append({i for i in range(4) if canvas[0, 2 + i] != MASK})
    steps = [revealed[k + 1] - revealed[k] for k in range(3)]
    assert steps == ORDERS[alg], f"{alg}: revealed {steps}, expected {ORDERS[alg]}"


def test_large_alg_temp_randomises_the_order():
    firsts = set()
    for seed in range(30):
        toy = FixedTailToy()
        dream_generate(toy, [[0, 1]], mask_id=MASK, max_new_tokens=4, steps=4,
                       alg="maskgit_plus", alg_temp=10.0, seed=seed)
        firsts.add(next(i for i in range(4) if toy.canvases[1][0, 2 + i] != MASK))
    assert len(firsts) > 1


def test_origin_reveals_greedy_tokens_at_rate_one_minus_s_over_t():
    toy = FixedTailToy()
    assert dream_generate(toy, [[0, 1]], mask_id=MASK, max_new_tokens=4, steps=1,
                          alg="origin").tokens == [GREEDY]
    assert len(toy.canvases) == 1  # one step reveals everything
    revealed_first, runs = 0, 400
    for seed in range(runs):
        toy = FixedTailToy()
        out = dream_generate(toy, [[0, 1]], mask_id=MASK, max_new_tokens=4, steps=4,
                             alg="origin", seed=seed)
        assert out.tokens == [GREEDY]
        # the second call sees what the first step revealed; no second call: it revealed all
        revealed_first += int((toy.canvases[1][0, 2:] != MASK).sum()) if len(toy.canvases) > 1 else 4
    rate, expected = revealed_first / (4 * runs), 1 - 0.75025
    stderr = math.sqrt(expected * (1 - expected) / (4 * runs))
    assert abs(rate - expected) < 4 * stderr, f"first-step reveal rate {rate}, expected {expected}"


def test_filters_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]], dtype=torch.float64))
    kept = lambda filtered: (filtered > torch.finfo(filtered.dtype).min).tolist()[0]
    # a token stays while the mass ranked above it is at most top_p
    assert kept(filter_logits(logits, 0.7, None)) == [True, True, False, False]
    assert kept(filter_logits(logits, 0.5, None)) == [True, True, False, False]
    assert kept(filter_logits(logits, 0.4, None)) == [True, False, False, False]
    assert kept(filter_logits(logits, 0.9, None)) == [True, True, True, False]
    assert kept(filter_logits(logits, None, 3)) == [True, True, True, False]
    confidence, token = dream_proposals(logits, alg="maskgit_plus", temperature=0.0, top_p=0.7,
                                        top_k=None, generator=None)
    assert token.item() == 0 and confidence.item() == pytest.approx(0.5 / 0.8, abs=1e-12)
    confidence, _ = dream_proposals(logits, alg="entropy", temperature=0.0, top_p=0.7,
                                    top_k=None, generator=None)
    p = torch.tensor([0.625, 0.375], dtype=torch.float64)
    assert confidence.item() == pytest.approx(float((p * p.log()).sum()), abs=1e-9)


def test_temperature_samples_the_tempered_distribution():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)).expand(20000, -1)
    generator = torch.Generator().manual_seed(0)
    _, tokens = dream_proposals(logits, alg="maskgit_plus", temperature=0.5, top_p=None,
                                top_k=None, generator=generator)
    tempered = torch.tensor([0.25, 0.09, 0.04], dtype=torch.float64)
    tempered /= tempered.sum()
    frequencies = torch.bincount(tokens, minlength=3).double() / len(tokens)
    stderr = (tempered * (1 - tempered) / len(tokens)).sqrt()
    assert ((frequencies - tempered).abs() < 4 * stderr).all(), (frequencies, tempered)


def test_top_k_one_makes_sampling_greedy():
    toy = FixedTailToy()
    out = dream_generate(toy, [[0, 1]], mask_id=MASK, max_new_tokens=4, steps=4,
                         alg="entropy", temperature=1.0, top_k=1, seed=7)
    assert out.tokens == [GREEDY]


@pytest.mark.parametrize("alg", ["origin", "maskgit_plus", "entropy"])
def test_output_does_not_depend_on_the_batch(alg):
    toy = ContextToy(mask_id=9)
    prompts = [[1, 2, 3], [4], [2, 2, 7, 1, 0]]
    options = dict(mask_id=9, max_new_tokens=6, steps=4, alg=alg, temperature=0.8, top_p=0.9,
                   alg_temp=0.5, eos_id=0, seed=[11, 12, 13])
    batched = dream_generate(toy, prompts, **options)
    for i, prompt in enumerate(prompts):
        alone = dream_generate(toy, [prompt], **{**options, "seed": [options["seed"][i]]})
        assert alone.tokens[0] == batched.tokens[i] and alone.stopped[0] == batched.stopped[i]


def test_output_is_cut_at_the_first_eos():
    toy = FixedTailToy()
    out = dream_generate(toy, [[0, 1]], mask_id=MASK, max_new_tokens=4, steps=4, eos_id=3)
    assert out.tokens == [[1, 2]] and out.stopped == [True]


def test_bad_arguments_are_named():
    toy = FixedTailToy()
    with pytest.raises(ValueError, match="alg must be one of"):
        dream_generate(toy, [[0]], mask_id=MASK, max_new_tokens=4, steps=4, alg="low_confidence")
    with pytest.raises(ValueError, match="top_p"):
        dream_generate(toy, [[0]], mask_id=MASK, max_new_tokens=4, steps=4, top_p=0.0)
