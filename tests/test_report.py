"""``illada-eval report``: the paper's tables with our runs beside them, in four formats."""
from __future__ import annotations

import csv
import io
import json

import pytest
from test_results import REPO_RESULTS, START, demo_run, llada_base_run, lm_eval_file, make_results_dir

from illada_eval import report
from illada_eval.results import load_scores


def read_csv(path) -> dict[str, dict[str, str]]:
    """Rows of a leaderboard CSV by their first cell."""
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    corner = next(iter(rows[0]))
    return {row[corner]: row for row in rows}


@pytest.fixture
def results_dir(tmp_path):
    return make_results_dir(tmp_path, {"llada/results_2026.json": llada_base_run(), "demo.json": demo_run()})


def test_published_only_tables_match_the_paper(tmp_path, capsys):
    root = make_results_dir(tmp_path, {})
    assert report.main(["--input", str(root)]) == 0
    out = root / "leaderboard"
    base, instruct = read_csv(out / "base.csv"), read_csv(out / "instruct.csv")
    assert {k: v for k, v in base["Average"].items() if k != "Benchmark"} == {
        "iLLaDA-8B-Base": "63.9", "LLaDA-8B-Base": "51.1", "Dream-7B-Base": "61.4", "Qwen2.5-7B": "63.3"}
    assert {k: v for k, v in instruct["Average"].items() if k != "Benchmark"} == {
        "iLLaDA-8B-Instruct": "67.1", "LLaDA-8B-Instruct": "54.5", "Dream-7B-Instruct": "60.2",
        "Qwen2.5-7B-Instruct": "77.1"}
    assert base["BBH"]["LLaDA-8B-Base"] == "49.7"
    assert list(base) == ["MMLU", "BBH", "ARC-C", "HellaSwag", "GSM8K", "MATH", "HumanEval", "MBPP", "Average"]
    markdown = (out / "leaderboard.md").read_text(encoding="utf-8")
    assert "| **Average** | **63.9** | **51.1** | **61.4** | **63.3** |" in markdown
    assert "| **Average** | **67.1** | **54.5** | **60.2** | **77.1** |" in markdown
    assert "Other tasks" not in markdown
    assert (out / "other.csv").read_text() == "Task\n"
    assert "7 files from 0 run file(s)" in capsys.readouterr().out


def test_runs_land_in_the_right_cells_with_differences(results_dir):
    assert report.main(["-i", str(results_dir)]) == 0
    base = read_csv(results_dir / "leaderboard" / "base.csv")
    header = list(base["MMLU"])
    assert header == ["Benchmark", "iLLaDA-8B-Base", "LLaDA-8B-Base", "Dream-7B-Base", "Qwen2.5-7B",
                      "LLaDA-8B-Base (run)", "Δ vs LLaDA-8B-Base", "illada-demo (run)"]  # no Δ for the demo
    run, delta, demo = "LLaDA-8B-Base (run)", "Δ vs LLaDA-8B-Base", "illada-demo (run)"
    # 47.0 - 45.9, 71.31 - 70.3, 35.37 - 35.4: a difference that rounds to zero has no sign
    assert (base["ARC-C"][run], base["ARC-C"][delta], base["ARC-C"][demo]) == ("47.0", "+1.1", "25.0")
    assert (base["GSM8K"][run], base["GSM8K"][delta], base["GSM8K"][demo]) == ("71.3", "+1.0", "0.0")
    assert (base["HumanEval"][run], base["HumanEval"][delta]) == ("35.4", "0.0")
    assert (base["MATH"][run], base["BBH"][run], base["MMLU"][run]) == ("31.5", "50.0", "66.0")
    # missing cells are empty in CSV and "–" in Markdown, never 0
    assert (base["HellaSwag"][run], base["HellaSwag"][delta], base["MBPP"][demo]) == ("", "", "")
    assert base["Average"][run] == "" and base["Average"]["LLaDA-8B-Base"] == "51.1"
    markdown = (results_dir / "leaderboard" / "leaderboard.md").read_text(encoding="utf-8")
    assert "| HellaSwag | 76.6 | 70.5 | 73.3 | 79.0 | – | – | – |" in markdown
    assert "| ARC-C | 60.8 | 45.9 | 59.8 | 51.5 | 47.0 | +1.1 | 25.0 |" in markdown
    assert "GSM8K ← gsm8k [exact_match,flexible-extract, n=1319]" in markdown  # the metric choice is shown
    assert "limit 8" in markdown
    other = read_csv(results_dir / "leaderboard" / "other.csv")
    assert other == {"illada_sanity_mc": {"Task": "illada_sanity_mc", "illada-demo (base)": "96.0"}}
    instruct = read_csv(results_dir / "leaderboard" / "instruct.csv")
    assert len(instruct["MMLU"]) == 5  # no run of the instruct preset: paper columns only


def test_complete_run_gets_an_average_and_its_difference(tmp_path):
    published = load_scores(make_results_dir(tmp_path / "p", {}))
    paper = published[(published["table"] == "instruct") & (published["model"] == "LLaDA-8B-Instruct")]
    tasks = {"MMLU": "mmlu_generative", "MMLU-Pro": "mmlu_pro", "MMLU-Redux": "mmlu_redux_generative",
             "GSM8K": "gsm8k", "MATH": "minerva_math", "HumanEval": "humaneval_instruct", "MBPP": "mbpp_instruct"}
    metrics = {"MMLU": "exact_match,none", "MMLU-Pro": "exact_match,custom-extract", "MMLU-Redux": "exact_match,none",
               "GSM8K": "exact_match,flexible-extract", "MATH": "math_verify,none", "HumanEval": "pass@1,create_test",
               "MBPP": "pass_at_1,none"}
    # every benchmark exactly 2 points above the paper
    results = {tasks[b]: {metrics[b]: (s + 2.0) / 100} for b, s in zip(paper["benchmark"], paper["score"])}
    root = make_results_dir(tmp_path, {"run.json": lm_eval_file("pretrained=GSAI-ML/LLaDA-8B-Instruct", results)})
    assert report.main(["-i", str(root)]) == 0
    instruct = read_csv(root / "leaderboard" / "instruct.csv")
    assert instruct["Average"]["LLaDA-8B-Instruct (run)"] == "56.5"  # 54.5 + 2
    assert {row["Δ vs LLaDA-8B-Instruct"] for row in instruct.values()} == {"+2.0"}


def test_regeneration_is_byte_identical(results_dir, tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    assert report.main(["-i", str(results_dir), "-o", str(first)]) == 0
    # a new file's modification time or listing order must not matter
    (results_dir / "runs" / "demo.json").touch()
    assert report.main(["-i", str(results_dir), "-o", str(second)]) == 0
    names = sorted(p.name for p in first.iterdir())
    assert names == ["base.csv", "instruct.csv", "leaderboard.html", "leaderboard.md", "leaderboard.tex",
                     "other.csv", "scores.csv"]
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_formats_are_well_formed(results_dir):
    files = report.render(load_scores(results_dir))
    latex = files["leaderboard.tex"].decode()
    assert latex.count("\\begin{table}") == 3 and latex.count("\\toprule") == 3
    assert "LLaDA-8B-Base (run) & $\\Delta$ vs LLaDA-8B-Base & illada-demo (run)" in latex
    assert "illada\\_sanity\\_mc" in latex and "HellaSwag & 76.6 & 70.5 & 73.3 & 79.0 & -- & -- & --" in latex
    page = files["leaderboard.html"].decode()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for external in ("http:", "https:", "<script", "src=", "<link"):
        assert external not in page  # self-contained
    assert '<td class="up">+1.1</td>' in page and page.count("<table>") == 3
    tidy = list(csv.DictReader(io.StringIO(files["scores.csv"].decode())))
    run = next(row for row in tidy if row["origin"] == "run" and row["benchmark"] == "GSM8K"
               and row["model"] == "LLaDA-8B-Base")
    assert (run["score"], run["metric"], run["n"], run["date"]) == ("71.31", "exact_match,flexible-extract", "1319",
                                                                   "2026-01-01T00:00:00Z")
    assert json.loads(run["settings"])["model_args"]["pretrained"] == "GSAI-ML/LLaDA-8B-Base"


def test_a_malformed_file_is_named_and_the_others_still_reported(results_dir, capsys):
    (results_dir / "runs" / "broken.json").write_text("{not json", encoding="utf-8")
    (results_dir / "runs" / "samples.json").write_text(json.dumps({"doc_id": 0, "resps": []}), encoding="utf-8")
    assert report.main(["-i", str(results_dir)]) == 0
    captured = capsys.readouterr()
    assert "broken.json: not valid JSON" in captured.err
    assert "samples.json: has no 'results' object" in captured.err
    assert "from 2 run file(s)" in captured.out
    base = read_csv(results_dir / "leaderboard" / "base.csv")
    assert base["ARC-C"]["LLaDA-8B-Base (run)"] == "47.0" and base["ARC-C"]["illada-demo (run)"] == "25.0"


def test_unwritable_output_and_missing_input_are_clear_errors(tmp_path, capsys):
    root = make_results_dir(tmp_path, {})
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert report.main(["-i", str(root), "-o", str(blocker / "leaderboard")]) == 1
    err = capsys.readouterr().err
    assert f"illada-eval report: error: cannot write to output directory {blocker / 'leaderboard'}" in err
    assert "--output" in err
    assert report.main(["-i", str(tmp_path / "missing")]) == 1
    assert "results directory" in capsys.readouterr().err


def test_committed_leaderboard_has_the_paper_tables():
    markdown = (REPO_RESULTS / "leaderboard" / "leaderboard.md").read_text(encoding="utf-8")
    assert "| **Average** | **63.9** | **51.1** | **61.4** | **63.3**" in markdown
    assert "| **Average** | **67.1** | **54.5** | **60.2** | **77.1**" in markdown


def test_run_dates_order_duplicates_not_file_names(tmp_path):
    older = lm_eval_file("pretrained=x/illada-demo", {"illada_sanity_mc": {"acc,none": 0.2}}, date=START)
    newer = lm_eval_file("pretrained=x/illada-demo", {"illada_sanity_mc": {"acc,none": 0.9}}, date=START + 1)
    root = make_results_dir(tmp_path, {"b.json": older, "a.json": newer})
    assert report.main(["-i", str(root)]) == 0
    assert read_csv(root / "leaderboard" / "other.csv")["illada_sanity_mc"]["illada-demo (base)"] == "90.0"
