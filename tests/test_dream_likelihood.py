"""Dream's Monte Carlo likelihood: time-based masking, EOS appended, protected ends, expectation."""
import itertools
import math
from fractions import Fraction

import pytest
import torch

from illada_eval.model.dream_likelihood import dream_loglikelihood, dream_mask_plan, stratified_times

from toy_models import ContextToy, UnigramToy

MASK, EOS = 9, 0
EPS = Fraction(1, 1000)


def reveal_weight(masked: int, maskable: int) -> float:
    """E over p ~ U[eps, 1) of P(exactly this mask | p) / p = p^(k-1) (1-p)^(m-k), integrated
    exactly: (1 / (1 - eps)) sum_j C(m-k, j) (-1)^j (1 - eps^(k+j)) / (k+j)."""
    total = Fraction(0)
    for j in range(maskable - masked + 1):
        power = masked + j
        total += math.comb(maskable - masked, j) * (-1) ** j * (1 - EPS ** power) / power
    return float(total / (1 - EPS))


def enumerated_dream_expectation(model, prompt, continuation, mask_id=MASK) -> float:
    """The estimator's exact expectation: every mask of the maskable positions (EOS appended,
    never masked; the sequence's first position never masked), one model call."""
    sequence = list(prompt) + list(continuation) + [EOS]
    maskable = [i for i in range(len(prompt), len(sequence) - 1) if i > 0]
    masks = [m for k in range(1, len(maskable) + 1) for m in itertools.combinations(maskable, k)]
    canvas = torch.tensor([sequence] * len(masks))
    for row, mask in enumerate(masks):
        canvas[row, list(mask)] = mask_id
    log_probs = torch.log_softmax(model(canvas, None).double(), dim=-1)
    return sum(
        reveal_weight(len(mask), len(maskable)) * sum(float(log_probs[row, i, sequence[i]]) for i in mask)
        for row, mask in enumerate(masks)
    )


def test_stratified_times_fill_one_stratum_each():
    generator = torch.Generator().manual_seed(0)
    for count in (1, 4, 32):
        times = stratified_times(count, generator)
        assert ((times >= 0) & (times < 1)).all()
        strata = torch.floor(times * count).long().sort().values
        assert strata.tolist() == list(range(count))


def test_plan_never_masks_the_eos_nor_the_sequence_start():
    generator = torch.Generator().manual_seed(1)
    masks, weights = dream_mask_plan(5, mc_num=64, mc_batch_size=32, generator=generator)
    assert not masks[:, -1].any() and masks[:, 0].any() and masks.any(dim=1).all()
    assert (weights > 0).all()
    start, _ = dream_mask_plan(5, mc_num=64, mc_batch_size=32, generator=generator,
                               first_is_sequence_start=True)
    assert not start[:, 0].any() and not start[:, -1].any()
    nothing, none = dream_mask_plan(1, mc_num=32, mc_batch_size=32, generator=generator)
    assert nothing.shape == (0, 1) and none.shape == (0,)


def test_enumeration_weights_integrate_to_one_per_position():
    # sum over masks holding position i of P(mask | p) / p = 1 for every p, so a context-free
    # model's expectation is the plain sum of the maskable tokens' log-probabilities
    maskable = 4
    per_position = sum(
        math.comb(maskable - 1, k - 1) * reveal_weight(k, maskable) for k in range(1, maskable + 1)
    )
    assert per_position == pytest.approx(1.0, abs=1e-12)
    probs = [0.1, 0.2, 0.3, 0.15, 0.25, 0.0]
    toy = UnigramToy(probs, mask_id=5)
    expected = sum(math.log(probs[t]) for t in [1, 2, 3])
    assert enumerated_dream_expectation(toy, [4], [1, 2, 3], mask_id=5) == pytest.approx(expected, abs=1e-9)


def test_mean_converges_to_the_enumerated_expectation():
    toy = ContextToy(mask_id=MASK)
    prompts, continuations = [[1, 2], [], [3]], [[4, 5, 6], [7, 3], [8]]
    exact = torch.tensor([
        enumerated_dream_expectation(toy, p, c) for p, c in zip(prompts, continuations)
    ])
    runs = torch.tensor([
        dream_loglikelihood(toy, prompts, continuations, mask_id=MASK, eos_id=EOS, mc_num=32,
                            mc_batch_size=8, batch_size=16, seed=seed)
        for seed in range(300)
    ], dtype=torch.float64)
    stderr = runs.std(dim=0) / math.sqrt(len(runs))
    gap = (runs.mean(dim=0) - exact).abs()
    assert (gap < 4 * stderr).all(), f"mean {runs.mean(0)} vs exact {exact} (stderr {stderr})"


def test_eos_is_appended_and_never_masked_and_the_prompt_never_masked():
    class Recording(ContextToy):
        def __call__(self, input_ids, attention_mask=None):
            self.seen = getattr(self, "seen", []) + [(input_ids.clone(), attention_mask)]
            return super().__call__(input_ids, attention_mask)

    toy = Recording(mask_id=MASK)
    dream_loglikelihood(toy, [[1, 2]], [[4, 5, 6]], mask_id=MASK, eos_id=EOS, mc_num=32, mc_batch_size=8)
    rows = torch.cat([ids for ids, _ in toy.seen])
    assert (rows[:, :2] == torch.tensor([1, 2])).all() and (rows[:, -1] == EOS).all()
    assert ((rows[:, 2:5] == MASK) | (rows[:, 2:5] == torch.tensor([4, 5, 6]))).all()
    assert (rows[:, 2:5] == MASK).any(dim=1).all()  # a draw that masks nothing costs no row


def test_scores_do_not_depend_on_the_batch_and_empty_scores_zero():
    toy = ContextToy(mask_id=MASK)
    prompts, continuations = [[1, 2], [3], [4, 4, 4]], [[4, 5, 6], [], [7]]
    batched = dream_loglikelihood(toy, prompts, continuations, mask_id=MASK, eos_id=EOS, batch_size=8,
                                  mc_num=32)
    assert batched[1] == 0.0
    for i, (p, c) in enumerate(zip(prompts, continuations)):
        alone = dream_loglikelihood(toy, [p], [c], mask_id=MASK, eos_id=EOS, batch_size=8, mc_num=32)
        assert alone[0] == pytest.approx(batched[i], rel=1e-12, abs=1e-12)


def test_mc_num_must_fill_whole_mini_batches():
    with pytest.raises(ValueError, match="multiple of mc_batch_size"):
        dream_mask_plan(3, mc_num=40, mc_batch_size=32, generator=torch.Generator())
