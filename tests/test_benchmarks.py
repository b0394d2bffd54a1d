"""What the benchmarks rely on: the forward-pass counter and the precision arithmetic."""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch

from illada_eval.adapter import CountingModel
from illada_eval.model import confidence_score, elbo_loglikelihood, elbo_mask_plan
from illada_eval.model.masking import derive_seed, seeded_generator
from tiny import tiny_model

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import _common  # noqa: E402
from likelihood_precision import compare, passes_for, pooled, power_law  # noqa: E402
from step_cost import FullProjection, Shape, canvas  # noqa: E402

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


SMALL = Shape(vocab=128, heads=4, hidden=32, intermediate=64, layers=2, canvas=64, block_start=32,
              block=8, batch=2)


@pytest.mark.parametrize("projection", ["full", "block"])
@pytest.mark.parametrize("mode", [None, "prefix", "dual"])
@torch.inference_mode()
def test_step_cost_counts_every_weight_product_of_a_call(mode, projection):
    from torch.utils.flop_counter import FlopCounterMode

    from illada_eval.model import call_logits
    from illada_eval.model._logits import select_block
    from illada_eval.model.kv_cache import BlockKVCache

    network = SMALL.network(torch.float32, "cpu")
    model = FullProjection(network) if projection == "full" else network
    ids, start, block, width = canvas(SMALL, 127, "cpu"), SMALL.block_start, SMALL.block, SMALL.canvas
    read = torch.ones(SMALL.batch, block, dtype=torch.bool)
    cache = BlockKVCache(mode) if mode else None
    if cache:
        cache.block_logits(model, ids, None, start, read)  # fill; the later step is counted
    with FlopCounterMode(display=False) as counter:
        if cache:
            cache.block_logits(model, ids, None, start, read)
        else:
            call_logits(model, ids, None, select_block(ids, start, read))
    queries = {None: width, "prefix": width - start, "dual": block}[mode]
    projected = queries if projection == "full" else block
    # torch counts linear layers exactly (attention on the CPU goes uncounted)
    assert counter.get_total_flops() == SMALL.weight_flops(queries, projected)


def test_benchmarks_refuse_a_busy_machine_unless_allowed(monkeypatch, capsys):
    cores = os.cpu_count()
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 0.5, 1.0, 1.0))
    with pytest.raises(SystemExit, match="load average .* exceeds the .* cores.*--allow-load"):
        _common.check_load(allow=False)
    record = _common.check_load(allow=True)
    assert "WARNING" in capsys.readouterr().out
    assert record["under_load"] and record["load_average_before"][0] == cores + 0.5
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert not _common.check_load(allow=False)["under_load"]


def test_gpu_run_smoke_mode_writes_its_results(tmp_path, monkeypatch):
    import gpu_run

    output = tmp_path / "gpu_run.json"
    monkeypatch.setattr(sys, "argv", ["gpu_run.py", "--smoke", "--allow-load", "--output", str(output)])
    gpu_run.main()
    results = json.loads(output.read_text())
    assert set(results) >= {"machine", "load", "settings", "step_cost", "generation"}
    assert "load_average_after" in results["load"]
    calls = results["step_cost"]["calls"]
    assert set(calls) == {"exact", "prefix", "dual"}
    assert all(call["identical_tokens"] for call in calls.values())
    assert calls["exact"]["block"]["flops"] < calls["exact"]["full"]["flops"]
    assert set(results["generation"]) == {"8/8", "16/8"} and results["settings"]["skipped_configs"] == []
    for rows in results["generation"].values():
        assert set(rows) == {"reference", "Fast-dLLM", "ours"}
        assert rows["reference"]["x_reference"] == pytest.approx(1.0)
        assert rows["Fast-dLLM"]["x_Fast-dLLM"] == pytest.approx(1.0)
        assert rows["ours"]["nfe"] <= rows["reference"]["nfe"]


def test_gpu_run_starts_no_generation_config_after_its_time_budget(tmp_path, monkeypatch):
    import gpu_run

    output = tmp_path / "gpu_run.json"
    monkeypatch.setattr(sys, "argv", ["gpu_run.py", "--smoke", "--allow-load", "--budget-s", "0",
                                      "--output", str(output)])
    gpu_run.main()
    results = json.loads(output.read_text())
    assert results["generation"] == {}
    assert results["settings"]["skipped_configs"] == ["8/8", "16/8"]
    assert set(results["step_cost"]["calls"]) == {"exact", "prefix", "dual"}  # measured before the budget applies
