"""Ingestion of published scores and lm-eval result files into the tidy table.

The sample run files are written here in the layout lm-eval 0.4.13 writes (``results``,
``groups``, ``group_subtasks``, ``configs``, ``n-shot``, ``n-samples``, ``config``, ``date``);
test_report.py and test_plot.py reuse the helpers below.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest

from illada_eval import results as R

REPO_RESULTS = Path(__file__).resolve().parents[1] / "results"
START = 1767225600.0  # 2026-01-01T00:00:00Z, as lm-eval writes it (time.time())


def lm_eval_file(model_args: str | dict, results: dict, *, groups: dict | None = None,
                 group_subtasks: dict | None = None, n_samples: dict | None = None,
                 date: float = START, extra: dict | None = None) -> dict:
    """A result file as lm-eval's EvaluationTracker writes it (fields we do not read included)."""
    leaves = [t for t in results if t not in (group_subtasks or {}) or not group_subtasks[t]]
    data = {
        "results": results,
        **({"groups": groups} if groups else {}),
        "group_subtasks": group_subtasks or {t: [] for t in results},
        "configs": {t: {"task": t, "num_fewshot": 0, "generation_kwargs": {"until": ["\n\n"], "max_gen_toks": 256},
                        "metadata": {"version": 1.0}} for t in leaves},
        "versions": {t: 1.0 for t in results},
        "n-shot": {t: 0 for t in results},
        "higher_is_better": {t: {"acc": True} for t in results},
        "n-samples": n_samples or {t: {"original": 100, "effective": 100} for t in leaves},
        "config": {"model": "illada", "model_args": model_args, "batch_size": 1, "batch_sizes": [],
                   "device": "cpu", "use_cache": None, "limit": None, "bootstrap_iters": 100000,
                   "gen_kwargs": None, "random_seed": 0, "numpy_seed": 1234, "torch_seed": 1234,
                   "fewshot_seed": 1234},
        "git_hash": "c123b8c",
        "date": date,
        "pretty_env_info": "PyTorch version: 2.13.0",
        "transformers_version": "5.24.0",
        "lm_eval_version": "0.4.13",
        "upper_git_hash": None,
        "task_hashes": {},
        "model_source": "illada",
        "model_name": "unused-if-model-args-name-a-model",
        "model_name_sanitized": "x",
        "system_instruction": None,
        "system_instruction_sha": None,
        "fewshot_as_multiturn": False,
        "chat_template": None,
        "chat_template_sha": None,
        "start_time": 1234.5,
        "end_time": 2345.6,
        "total_evaluation_time_seconds": "1111.1",
    }
    data.update(extra or {})
    return data


def llada_base_run() -> dict:
    """A run of LLaDA-8B-Base: ARC-C, GSM8K, BBH (group), MMLU (nested groups), HumanEval, MATH."""
    results = {
        "arc_challenge": {"alias": "arc_challenge", "acc,none": 0.455, "acc_stderr,none": 0.0145,
                          "acc_norm,none": 0.47, "acc_norm_stderr,none": 0.0146},
        "gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.65, "exact_match_stderr,strict-match": 0.013,
                  "exact_match,flexible-extract": 0.7131, "exact_match_stderr,flexible-extract": 0.012},
        "bbh": {"alias": "bbh", "exact_match,get-answer": 0.5, "exact_match_stderr,get-answer": 0.005},
        "bbh_cot_fewshot_navigate": {"alias": " - bbh_cot_fewshot_navigate", "exact_match,get-answer": 0.9,
                                     "exact_match_stderr,get-answer": 0.02},
        "bbh_cot_fewshot_snarks": {"alias": " - bbh_cot_fewshot_snarks", "exact_match,get-answer": 0.1,
                                   "exact_match_stderr,get-answer": 0.02},
        "mmlu": {"alias": "mmlu", "acc,none": 0.66, "acc_stderr,none": 0.0038},
        "mmlu_stem": {"alias": " - stem", "acc,none": 0.55, "acc_stderr,none": 0.008},
        "mmlu_abstract_algebra": {"alias": "  - abstract_algebra", "acc,none": 0.3, "acc_stderr,none": 0.04},
        "humaneval": {"alias": "humaneval", "pass@1,create_test": 0.3537, "pass@1_stderr,create_test": "N/A"},
        "minerva_math": {"alias": "minerva_math", "exact_match,none": 0.28, "exact_match_stderr,none": 0.006,
                         "math_verify,none": 0.315, "math_verify_stderr,none": 0.0065},
        "minerva_math_algebra": {"alias": " - minerva_math_algebra", "exact_match,none": 0.4,
                                 "math_verify,none": 0.45},
    }
    groups = {name: results[name] for name in ("bbh", "mmlu", "mmlu_stem", "minerva_math")}
    subtasks = {
        "bbh": ["bbh_cot_fewshot_navigate", "bbh_cot_fewshot_snarks"],
        "mmlu": ["mmlu_stem"],
        "mmlu_stem": ["mmlu_abstract_algebra"],
        "minerva_math": ["minerva_math_algebra"],
    }
    n_samples = {
        "arc_challenge": {"original": 1172, "effective": 1172},
        "gsm8k": {"original": 1319, "effective": 1319},
        "bbh_cot_fewshot_navigate": {"original": 250, "effective": 250},
        "bbh_cot_fewshot_snarks": {"original": 178, "effective": 178},
        "mmlu_abstract_algebra": {"original": 100, "effective": 100},
        "humaneval": {"original": 164, "effective": 164},
        "minerva_math_algebra": {"original": 1187, "effective": 1187},
    }
    return lm_eval_file(
        "pretrained=GSAI-ML/LLaDA-8B-Base,dtype=bfloat16,mc_scoring=elbo,mc_num=128",
        results, groups=groups, group_subtasks=subtasks, n_samples=n_samples,
        extra={"illada_eval": {"nfe": 12345, "tokens_per_second": 17.5}},
    )


def demo_run() -> dict:
    """Our tiny demo model on two paper benchmarks (with --limit) and a sanity task."""
    results = {
        "illada_arc_challenge_base": {"alias": "arc", "acc,none": 0.25, "acc_stderr,none": 0.1},
        "illada_gsm8k_base": {"alias": "gsm8k", "exact_match,flexible-extract": 0.0,
                              "exact_match,strict-match": 0.0},
        "illada_sanity_mc": {"alias": "sanity_mc", "acc,none": 0.96, "acc_stderr,none": 0.02},
        "illada_sanity_ppl": {"alias": "sanity_ppl", "word_perplexity,none": 3.2},
    }
    data = lm_eval_file({"pretrained": "/tmp/ckpt/illada-demo", "dtype": "float32"}, results,
                        date=START + 3600, extra={"illada_eval": {"preset": "base"}})
    data["config"]["limit"] = 8
    data["config"]["illada_adapter"] = {"pretrained": "/tmp/ckpt/illada-demo", "mask_id": 5, "mc_scoring": "confidence"}
    data["n-samples"] = {t: {"original": 1000, "effective": 8} for t in results}
    return data


def protocol_run(model: str, cells: dict[str, tuple[str, float, float | None, int]], *, limit: int | None = None,
                 backend: str = "illada", date: float = START) -> dict:
    """A run file of our task files: task -> (metric key, score 0-1, stderr 0-1, documents)."""
    results = {task: {"alias": task, metric: score, **({metric.replace(",", "_stderr,", 1): err} if err else {})}
               for task, (metric, score, err, _) in cells.items()}
    data = lm_eval_file({"pretrained": f"/ckpt/{model}"}, results, date=date,
                        n_samples={task: {"original": n, "effective": n} for task, (*_, n) in cells.items()})
    data["config"].update(model=backend, limit=limit)
    return data


def make_results_dir(tmp_path: Path, runs: dict[str, dict | str]) -> Path:
    """A results/ folder: the repository's published scores plus the given run files."""
    root = tmp_path / "results"
    (root / "published").mkdir(parents=True)
    shutil.copy(REPO_RESULTS / "published" / "scores.csv", root / "published" / "scores.csv")
    for name, content in runs.items():
        path = root / "runs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2), encoding="utf-8")
    return root


# ---------------------------------------------------------------- published scores

PAPER_AVERAGES = {
    "base": {"iLLaDA-8B-Base": "63.9", "LLaDA-8B-Base": "51.1", "Dream-7B-Base": "61.4", "Qwen2.5-7B": "63.3"},
    "instruct": {"iLLaDA-8B-Instruct": "67.1", "LLaDA-8B-Instruct": "54.5", "Dream-7B-Instruct": "60.2",
                 "Qwen2.5-7B-Instruct": "77.1"},
}


@pytest.mark.parametrize("table", ["base", "instruct"])
def test_published_averages_equal_the_papers(table):
    board = R.leaderboard(R.load_scores(REPO_RESULTS), table)
    averages = {model: R.format_score(board.average(board.published[model])) for model in board.published.columns}
    assert averages == PAPER_AVERAGES[table]


def test_published_tables_have_the_papers_shape():
    scores = R.load_published(REPO_RESULTS / R.PUBLISHED_CSV)
    assert list(scores.columns) == R.COLUMNS
    assert set(scores["origin"]) == {"paper"}
    base = R.leaderboard(scores, "base")
    assert base.benchmarks == ["MMLU", "BBH", "ARC-C", "HellaSwag", "GSM8K", "MATH", "HumanEval", "MBPP"]
    instruct = R.leaderboard(scores, "instruct")
    assert instruct.benchmarks == ["MMLU", "MMLU-Pro", "MMLU-Redux", "GSM8K", "MATH", "HumanEval", "MBPP"]
    assert not base.published.isna().any().any() and not instruct.published.isna().any().any()
    assert set(scores["table"]) == {"base", "instruct", "scoring_ablation", "llada_base"}
    assert scores.loc[(scores["model"] == "LLaDA-8B-Base") & (scores["benchmark"] == "BBH"), "shots"].item() == 3


def test_round_half_down_is_what_makes_the_paper_averages():
    assert R.format_score(511.6 / 8) == "63.9"  # the tie the paper rounds down
    assert R.format_score(421.1 / 7) == "60.2"
    assert R.format_score(63.449999999999996) == "63.4"
    assert R.format_score(-0.04, signed=True) == "0.0"
    assert R.format_score(1.26, signed=True) == "+1.3"
    assert R.format_score(-2.5, signed=True) == "-2.5"


def test_malformed_published_csv_names_the_problem(tmp_path):
    bad = tmp_path / "scores.csv"
    bad.write_text("table,model,model_kind,benchmark,score,shots,source,provenance\nbase,m,diffusion,MMLU,n/a,,s,verbatim\n")
    with pytest.raises(ValueError, match=r"scores.csv: score is not a number on line\(s\) 2"):
        R.load_published(bad)
    (tmp_path / "cols.csv").write_text("table,model\nbase,m\n")
    with pytest.raises(ValueError, match="missing column"):
        R.load_published(tmp_path / "cols.csv")


# ---------------------------------------------------------------- task names and metrics


@pytest.mark.parametrize(
    "task, benchmark",
    [
        ("arc_challenge", "ARC-C"), ("illada_arc_challenge", "ARC-C"), ("illada_arc_challenge_base", "ARC-C"),
        ("arc", "ARC-C"), ("mmlu", "MMLU"), ("illada_mmlu_instruct", "MMLU"), ("mmlu_generative", "MMLU"),
        ("mmlu_pro", "MMLU-Pro"), ("illada_mmlu_pro_instruct", "MMLU-Pro"), ("mmlu_redux_generative", "MMLU-Redux"),
        ("MMLU-Redux", "MMLU-Redux"), ("bbh", "BBH"), ("bbh_cot_fewshot", "BBH"), ("illada_bbh_base", "BBH"),
        ("gsm8k", "GSM8K"), ("gsm8k_cot", "GSM8K"), ("minerva_math", "MATH"), ("hendrycks_math", "MATH"),
        ("math", "MATH"), ("illada_math_base", "MATH"), ("minerva_math500", "MATH"), ("humaneval", "HumanEval"),
        ("illada_humaneval_instruct", "HumanEval"), ("mbpp", "MBPP"), ("hellaswag", "HellaSwag"),
        ("illada_hellaswag_base", "HellaSwag"), ("illada_instruct_gsm8k", "GSM8K"), ("illada_instruct_mmlu", "MMLU"),
        ("illada_instruct_mmlu_pro", "MMLU-Pro"), ("illada_instruct_mmlu_redux", "MMLU-Redux"),
        ("illada_instruct_math", "MATH"), ("illada_instruct_humaneval", "HumanEval"), ("illada_mbpp", "MBPP"),
        ("illada_bbh", "BBH"), ("illada_piqa", "PIQA"), ("illada_winogrande", "WinoGrande"),
        # subtasks and other benchmarks are not paper rows
        ("mmlu_abstract_algebra", None), ("mmlu_stem", None), ("bbh_cot_fewshot_navigate", None),
        ("minerva_math_algebra", None), ("gsm8k_platinum", None), ("humaneval_plus", None),
        ("arc_easy", "ARC-E"), ("illada_sanity_mc", None), ("illada_base", None), ("llada_base_math", "MATH"),
        ("llada_base_gsm8k", "GSM8K"),
    ],
)
def test_task_names_map_to_paper_benchmarks(task, benchmark):
    found = R.benchmark_for_task(task)
    assert (found.name if found else None) == benchmark


def test_task_preset_comes_from_the_name():
    assert R.task_preset("illada_gsm8k_instruct") == "instruct"
    assert R.task_preset("illada_instruct_gsm8k") == "instruct"
    assert R.task_preset("illada_gsm8k_base") == "base"
    assert R.task_preset("gsm8k") is None and R.task_preset("illada_gsm8k") is None
    assert R.task_preset("instruct_gsm8k") is None  # the prefix form is only read on our own tasks


@pytest.mark.parametrize(
    "task, entry, expected",
    [
        ("gsm8k", {"exact_match,strict-match": 0.6, "exact_match,flexible-extract": 0.7},
         "exact_match,flexible-extract"),
        ("gsm8k", {"exact_match,strict-match": 0.6, "exact_match_stderr,strict-match": 0.01},
         "exact_match,strict-match"),
        ("arc_challenge", {"acc,none": 0.5, "acc_norm,none": 0.6, "acc_norm_stderr,none": 0.1}, "acc_norm,none"),
        ("arc_challenge", {"acc,none": 0.5, "acc_stderr,none": 0.1}, "acc,none"),
        ("hellaswag", {"acc,none": 0.5, "acc_norm,none": "N/A"}, "acc,none"),
        ("minerva_math", {"exact_match,none": 0.2, "math_verify,none": 0.3}, "math_verify,none"),
        ("hendrycks_math", {"exact_match,none": 0.2}, "exact_match,none"),
        ("humaneval", {"pass@1,create_test": 0.3, "pass@1_stderr,create_test": 0.03}, "pass@1,create_test"),
        ("mbpp", {"pass_at_1,none": 0.4}, "pass_at_1,none"),
        ("bbh", {"exact_match,get-answer": 0.5, "exact_match,none": 0.4}, "exact_match,get-answer"),
        ("mmlu_pro", {"exact_match,custom-extract": 0.5}, "exact_match,custom-extract"),
        ("mmlu", {"acc,none": 0.6, "alias": "mmlu"}, "acc,none"),
        ("mmlu", {"alias": "mmlu"}, None),
        ("illada_sanity_ppl", {"word_perplexity,none": 3.0}, None),
    ],
)
def test_primary_metric_choice(task, entry, expected):
    assert R.primary_metric(entry, R.benchmark_for_task(task)) == expected


# ---------------------------------------------------------------- run files


def test_a_run_file_ingests_into_the_right_rows(tmp_path):
    root = make_results_dir(tmp_path, {"GSAI-ML__LLaDA-8B-Base/results_2026-01-01T00-00-00.json": llada_base_run()})
    runs = R.load_scores(root).query("origin == 'run'").set_index("benchmark")
    assert sorted(runs.index) == ["ARC-C", "BBH", "GSM8K", "HumanEval", "MATH", "MMLU"]  # no subtasks
    assert set(runs["model"]) == {"LLaDA-8B-Base"}
    assert set(runs["table"]) == {"base"}  # the published LLaDA-8B-Base is in the base table
    expected = {"ARC-C": ("arc_challenge", "acc_norm,none", 47.0, 1.46, 1172),
                "GSM8K": ("gsm8k", "exact_match,flexible-extract", 71.31, 1.2, 1319),
                "BBH": ("bbh", "exact_match,get-answer", 50.0, 0.5, 428),
                "MMLU": ("mmlu", "acc,none", 66.0, 0.38, 100),
                "HumanEval": ("humaneval", "pass@1,create_test", 35.37, None, 164),
                "MATH": ("minerva_math", "math_verify,none", 31.5, 0.65, 1187)}
    for bench, (task, metric, score, stderr, n) in expected.items():
        row = runs.loc[bench]
        assert (row["task"], row["metric"], row["n"]) == (task, metric, n)
        assert row["score"] == pytest.approx(score)
        assert pd.isna(row["stderr"]) if stderr is None else row["stderr"] == pytest.approx(stderr)
    row = runs.loc["ARC-C"]
    assert row["date"] == "2026-01-01T00:00:00Z"
    assert row["shots"] == 0
    assert row["source"] == "runs/GSAI-ML__LLaDA-8B-Base/results_2026-01-01T00-00-00.json"
    settings = json.loads(row["settings"])
    assert settings["model_args"] == {"pretrained": "GSAI-ML/LLaDA-8B-Base", "dtype": "bfloat16",
                                      "mc_scoring": "elbo", "mc_num": "128"}
    assert settings["illada_eval"] == {"nfe": 12345, "tokens_per_second": 17.5}
    assert settings["generation_kwargs"]["max_gen_toks"] == 256


def test_unknown_model_and_other_tasks(tmp_path):
    root = make_results_dir(tmp_path, {"demo.json": demo_run()})
    scores = R.load_scores(root)
    runs = scores[scores["origin"] == "run"]
    assert set(runs["model"]) == {"illada-demo"}
    assert dict(zip(runs["task"], runs["benchmark"])) == {
        "illada_arc_challenge_base": "ARC-C", "illada_gsm8k_base": "GSM8K", "illada_sanity_mc": None}
    settings = json.loads(runs["settings"].iloc[0])
    assert settings["limit"] == 8 and settings["adapter"]["mc_scoring"] == "confidence"
    assert set(runs["n"]) == {8} and not runs["full"].any()
    # a --limit run stays out of the tables unless asked for, and is never compared
    assert R.other_run_rows(scores).empty and R.leaderboard(scores, "base").runs == []
    others = R.other_run_rows(scores, include_partial=True)
    assert list(others["task"]) == ["illada_sanity_mc"]
    board = R.leaderboard(scores, "base", include_partial=True)
    assert [(run.model, run.reference) for run in board.runs] == [("illada-demo", None)]
    assert board.runs[0].scores == {"ARC-C": 25.0, "GSM8K": 0.0}  # a real 0, not a missing cell
    assert board.average(board.runs[0].scores) is None  # 2 of 8 benchmarks: no average


def test_published_cells_name_their_protocol_dataset_and_metric():
    scores = R.load_published(REPO_RESULTS / R.PUBLISHED_CSV)
    cells = scores.set_index(["table", "model", "benchmark"])
    llada_math = cells.loc[("base", "LLaDA-8B-Base", "MATH")]
    assert (llada_math["protocol"], llada_math["dataset"], llada_math["n"]) == ("llada-base", "hendrycks_math", 5000)
    illada_math = cells.loc[("base", "iLLaDA-8B-Base", "MATH")]
    assert (illada_math["protocol"], illada_math["dataset"]) == ("illada-base", "math500")
    assert cells.loc[("base", "Qwen2.5-7B", "ARC-C")]["protocol"] == "qwen2.5-base"
    quoted = cells.loc[("llada_base", "Qwen2.5-7B (as reported by Qwen)", "ARC-C")]
    assert quoted["protocol"] is None  # quoted from Qwen's report: nothing to reproduce


LLADA_FULL = {"llada_base_mmlu": ("acc,none", 0.66, 0.004, 14042),
              "llada_base_bbh": ("exact_match,get-answer", 0.5, 0.006, 6511),
              "llada_base_math": ("exact_match,none", 0.30, 0.006, 5000),
              "llada_base_humaneval": ("pass@1,none", 0.36, 0.037, 164),
              "llada_base_arc_challenge": ("acc_norm,none", 0.47, 0.0146, 1172),
              "llada_base_gsm8k": ("exact_match,flexible-extract", 0.71, 0.012, 1319)}


def test_only_comparable_cells_get_a_difference(tmp_path):
    root = make_results_dir(tmp_path, {"llada.json": protocol_run("LLaDA-8B-Base", LLADA_FULL)})
    (run,) = R.leaderboard(R.load_scores(root), "base").runs
    assert (run.model, run.protocol, run.reference) == ("LLaDA-8B-Base", "llada-base", "LLaDA-8B-Base")
    assert run.stderrs["MMLU"] == pytest.approx(0.4)
    paper = {"MMLU": 65.9, "BBH": 49.7, "MATH": 31.4, "HumanEval": 35.4, "ARC-C": 45.9, "GSM8K": 70.3}
    assert run.deltas(paper) == pytest.approx({"MMLU": 0.1, "BBH": 0.3, "MATH": -1.4, "HumanEval": 0.6})
    assert "acc or acc_norm" in run.comparisons["ARC-C"]
    assert "strict-match or flexible-extract" in run.comparisons["GSM8K"]


def test_a_limit_run_never_enters_and_math_500_is_never_subtracted_from_full_math(tmp_path):
    partial = protocol_run("LLaDA-8B-Base", {"llada_base_bbh": ("exact_match,get-answer", 0.9, 0.01, 100)},
                           limit=100, date=START + 60)
    math500 = protocol_run("LLaDA-8B-Base", {"illada_math": ("exact_match,none", 0.30, 0.02, 500)})
    root = make_results_dir(tmp_path, {"full.json": protocol_run("LLaDA-8B-Base", LLADA_FULL),
                                       "partial.json": partial, "math500.json": math500})
    scores = R.load_scores(root)
    board = R.leaderboard(scores, "base")
    llada = next(run for run in board.runs if run.protocol == "llada-base")
    assert llada.scores["BBH"] == pytest.approx(50.0)  # the full run's cell, not the newer partial one
    assert set(llada.rows["source"]) == {"runs/full.json"}
    # the MATH-500 run is a column of its own protocol, and not compared with LLaDA's full-set MATH
    other = next(run for run in board.runs if run.protocol == "illada-base")
    assert other.reference == "LLaDA-8B-Base" and other.deltas(board.published["LLaDA-8B-Base"].to_dict()) == {}
    assert other.comparisons["MATH"] == "run under illada-base, published under llada-base"
    # with --include-partial the partial cell shows, in a column marked partial, never compared
    shown = R.leaderboard(scores, "base", include_partial=True)
    newest = next(run for run in shown.runs if run.protocol == "llada-base")
    assert newest.partial and newest.scores["BBH"] == pytest.approx(90.0)
    assert newest.comparisons["BBH"] == "partial run: 100 documents of 6511"


def test_comparison_checks_dataset_and_metric_under_one_protocol():
    paper = pd.Series({"model": "LLaDA-8B-Base", "score": 31.4, "protocol": "llada-base",
                       "dataset": "hendrycks_math", "metric": "exact_match,none", "n": 5000})
    run = pd.Series({"benchmark": "MATH", "protocol": "llada-base", "dataset": "hendrycks_math",
                     "metric": "exact_match,none", "full": True, "n": 5000})
    assert R.comparison(run, paper) is None
    assert R.comparison(run.copy().replace({"hendrycks_math": "math500"}), paper) == (
        "run on math500, published on hendrycks_math")
    assert R.comparison(run.copy().replace({"exact_match,none": "math_verify,none"}), paper) == (
        "run shows math_verify,none, published exact_match,none")
    assert "quoted" in R.comparison(run, paper.copy().replace({"llada-base": None}))


@pytest.mark.parametrize(
    "model_args, extra, expected",
    [
        ("pretrained=GSAI-ML/LLaDA-8B-Instruct,dtype=bfloat16", {}, ("LLaDA-8B-Instruct", "instruct")),
        ({"pretrained": "hf:Qwen/Qwen2.5-7B"}, {}, ("Qwen2.5-7B", "base")),
        ({"pretrained": "/ckpt/my-Instruct-model/"}, {}, ("my-Instruct-model", "instruct")),
        ({"pretrained": "/ckpt/illada-demo"}, {"illada_eval": {"preset": "instruct"}}, ("illada-demo", "instruct")),
        (None, {"model_name": "org/named-by-lm-eval"}, ("named-by-lm-eval", "base")),
    ],
)
def test_model_name_and_preset_of_a_run(tmp_path, model_args, extra, expected):
    data = lm_eval_file(model_args, {"gsm8k": {"exact_match,flexible-extract": 0.5}}, extra=extra)
    if model_args is None:
        del data["config"]["model_args"]
    root = make_results_dir(tmp_path, {"run.json": data})
    row = R.load_scores(root).query("origin == 'run'").iloc[0]
    assert (row["model"], row["table"]) == expected


def test_task_name_sets_the_preset(tmp_path):
    data = lm_eval_file("pretrained=x/iLLaDA-8B-Base", {"illada_instruct_mmlu": {"exact_match,get_response": 0.5},
                                                        "illada_gsm8k_instruct": {"exact_match,none": 0.4},
                                                        "illada_mmlu": {"acc,none": 0.6}})
    root = make_results_dir(tmp_path, {"run.json": data})
    runs = R.load_scores(root).query("origin == 'run'")
    assert dict(zip(runs["task"], runs["table"])) == {
        "illada_instruct_mmlu": "instruct", "illada_gsm8k_instruct": "instruct", "illada_mmlu": "base"}
    assert set(runs["benchmark"]) == {"MMLU", "GSM8K"}


def test_our_preset_group_without_scores_keeps_its_children(tmp_path):
    results = {"illada_base": {"alias": "illada_base"}, "illada_gsm8k_base": {"exact_match,flexible-extract": 0.5}}
    data = lm_eval_file("pretrained=x/iLLaDA-8B-Base", results,
                        group_subtasks={"illada_base": ["illada_gsm8k_base"]})
    root = make_results_dir(tmp_path, {"run.json": data})
    runs = R.load_scores(root).query("origin == 'run'")
    assert list(runs["benchmark"]) == ["GSM8K"]


def test_malformed_files_are_named_and_the_rest_still_load(tmp_path, caplog):
    root = make_results_dir(tmp_path, {
        "a_broken.json": '{"results": {"gsm8k": ',
        "b_no_results.json": {"config": {"model_args": "pretrained=x"}},
        "c_list.json": [1, 2],
        "d_bad_entry.json": lm_eval_file("pretrained=x/y", {"gsm8k": [0.5], "mbpp": {"pass@1,none": 0.25}}),
        "good.json": llada_base_run(),
    })
    with caplog.at_level(logging.WARNING, logger="illada_eval.results"):
        scores = R.load_scores(root)
    messages = "\n".join(caplog.messages)
    assert f"{root / 'runs' / 'a_broken.json'}: not valid JSON (Expecting value at line 1, column 23)" in messages
    assert f"{root / 'runs' / 'b_no_results.json'}: has no 'results' object" in messages
    assert f"{root / 'runs' / 'c_list.json'}: expected a JSON object at the top, found list" in messages
    assert "d_bad_entry.json: results entry for task 'gsm8k' is not an object" in messages
    runs = scores[scores["origin"] == "run"]
    assert set(runs["source"]) == {"runs/good.json", "runs/d_bad_entry.json"}
    assert len(runs[runs["source"] == "runs/good.json"]) == 6


def test_newer_run_wins_a_cell_and_the_older_is_named(tmp_path, caplog):
    old = lm_eval_file("pretrained=x/LLaDA-8B-Base", {"gsm8k": {"exact_match,flexible-extract": 0.5}}, date=START)
    new = lm_eval_file("pretrained=x/LLaDA-8B-Base", {"gsm8k": {"exact_match,flexible-extract": 0.6},
                                                      "mbpp": {"pass@1,none": 0.4}}, date=START + 60)
    root = make_results_dir(tmp_path, {"z_old.json": old, "a_new.json": new})
    with caplog.at_level(logging.WARNING, logger="illada_eval.results"):
        board = R.leaderboard(R.load_scores(root), "base")
    assert board.runs[0].scores == {"GSM8K": pytest.approx(60.0), "MBPP": pytest.approx(40.0)}
    assert caplog.messages == []  # building a table warns of nothing: the command does, once


def test_report_names_a_superseded_file_once(tmp_path, capsys):
    from illada_eval import report

    old = lm_eval_file("pretrained=x/LLaDA-8B-Base", {"gsm8k": {"exact_match,flexible-extract": 0.5}}, date=START)
    new = lm_eval_file("pretrained=x/LLaDA-8B-Base", {"gsm8k": {"exact_match,flexible-extract": 0.6}}, date=START + 60)
    root = make_results_dir(tmp_path, {"z_old.json": old, "a_new.json": new})
    assert report.main(["-i", str(root)]) == 0
    assert capsys.readouterr().err.count("runs/z_old.json") == 1


def test_missing_results_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"results directory .*nowhere not found; .*--input"):
        R.load_scores(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"published scores not found at .*scores.csv"):
        R.load_scores(tmp_path / "empty")


def test_write_files_into_an_unwritable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match=r"cannot write to output directory .*file/out: .*--output"):
        R.write_files(blocker / "out", {"a.txt": b"x"})
    written = R.write_files(tmp_path / "out", {"b.txt": b"2", "a.txt": b"1"})
    assert [p.name for p in written] == ["a.txt", "b.txt"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.txt", "b.txt"]  # no temp files left
