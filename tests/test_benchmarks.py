"""What the benchmarks rely on: the forward-pass counter and the precision arithmetic."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from illada_eval.adapter import CountingModel
from illada_eval.model import confidence_score, elbo_loglikelihood, elbo_mask_plan
from illada_eval.model.masking import derive_seed, seeded_generator
from tiny import tiny_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from likelihood_precision import compare, passes_for, pooled, power_law  # noqa: E402

PROMPTS = [[10, 11, 12], [13, 14], [15]]
CONTINUATIONS = [[20, 21, 22, 23], [24, 25], [26]]


@pytest.fixture
def counting_model() -> CountingModel:
    return CountingModel(tiny_model())


def test_counter_counts_one_pass_per_confidence_reveal(counting_model):
    confidence_score(counting_model, PROMPTS, CONTINUATIONS, mask_id=5, batch_size=8)
    # one pass per continuation token; all pairs share the calls of the longest one
    assert counting_model.sequences == sum(map(len, CONTINUATIONS))
    assert counting_model.calls == max(map(len, CONTINUATIONS))


def test_counter_counts_the_distinct_elbo_masks(counting_model):
    elbo_loglikelihood(counting_model, PROMPTS, CONTINUATIONS, mask_id=5, mc_num=32, seed=3, batch_size=7)
    plans = [elbo_mask_plan(len(c), mc_num=32, mc_batch_size=32,
                            generator=seeded_generator(derive_seed(3, p, c)))[0]
             for p, c in zip(PROMPTS, CONTINUATIONS)]
    assert counting_model.sequences == sum(len(masks) for masks in plans)
    assert counting_model.sequences < 32 * len(PROMPTS)  # short continuations: duplicates merged
    assert counting_model.calls == math.ceil(counting_model.sequences / 7)


def test_counter_checks_only_the_logits_read():
    def nan_at_position_1(input_ids, attention_mask):
        logits = torch.zeros(*input_ids.shape, 8)
        logits[:, 1] = float("nan")
        return logits

    model = CountingModel(nan_at_position_1)
    ids = torch.arange(6)[None]
    read = torch.zeros(1, 6, dtype=torch.bool)
    read[0, 3:] = True
    assert model(ids, logits_at=read).shape == (3, 8)
    with pytest.raises(FloatingPointError, match="NaN logits"):
        model(ids)


def test_power_law_fit_recovers_an_exact_power_law():
    passes = [8, 16, 32, 64, 128]
    errors = [3.0 * p**-0.7 for p in passes]
    intercept, slope = power_law(passes, errors)
    assert slope == pytest.approx(-0.7)
    assert math.exp(intercept) == pytest.approx(3.0)
    assert passes_for((intercept, slope), 3.0 * 100**-0.7) == pytest.approx(100)


def test_half_the_error_at_the_same_law_needs_a_quarter_of_the_passes():
    passes = [8.0, 16.0, 32.0, 64.0, 128.0]
    rows = {"llada": {"passes": passes, "se": [2.0 / math.sqrt(p) for p in passes]},
            "balanced": {"passes": passes, "se": [1.0 / math.sqrt(p) for p in passes]}}
    compare(rows, budget=32)
    assert rows["llada"]["ratio"] == pytest.approx(1.0)
    assert rows["balanced"]["passes_to_target"] == pytest.approx(32.0)
    assert rows["balanced"]["ratio"] == pytest.approx(4.0)
    assert rows["balanced"]["within_budget"] and not rows["llada"]["within_budget"]
    assert not rows["llada"]["extrapolated"] and not rows["balanced"]["extrapolated"]


def test_pooled_weights_buckets_by_their_requests():
    rows = [{"se": [1.0, 2.0], "passes": [10.0, 20.0]}, {"se": [4.0, 8.0], "passes": [40.0, 80.0]}]
    assert pooled(rows, [3, 1]) == {"se": [1.75, 3.5], "passes": [17.5, 35.0]}
