"""``illada-eval report``: the paper's tables with our runs beside them, in four formats."""
from __future__ import annotations

import csv
import io
import json

import pytest
import dataclasses

from test_results import LLADA_FULL, REPO_RESULTS, START, demo_run, lm_eval_file, make_results_dir, protocol_run

from illada_eval import report
from illada_eval.registry import PROTOCOLS
from illada_eval.results import load_scores


def read_csv(path) -> dict[str, dict[str, str]]:
    """Rows of a leaderboard CSV by their first cell."""
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    corner = next(iter(rows[0]))
    return {row[corner]: row for row in rows}


@pytest.fixture
def results_dir(tmp_path):
    return make_results_dir(tmp_path, {"llada/results_2026.json": protocol_run("LLaDA-8B-Base", LLADA_FULL),
                                       "demo.json": demo_run()})


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


RUN, DELTA = "LLaDA-8B-Base (run, llada-base)", "Δ vs LLaDA-8B-Base"


def test_runs_land_in_the_right_cells_with_differences(results_dir):
    assert report.main(["-i", str(results_dir)]) == 0
    base = read_csv(results_dir / "leaderboard" / "base.csv")
    header = list(base["MMLU"])
    # the demo ran with --limit: not in the table unless asked for
    assert header == ["Benchmark", "iLLaDA-8B-Base", "LLaDA-8B-Base", "Dream-7B-Base", "Qwen2.5-7B", RUN, DELTA]
    # comparable cells get a difference (66.0 - 65.9, 36.0 - 35.4, 30.0 - 31.4); the others say n/c
    assert (base["MMLU"][RUN], base["MMLU"][DELTA]) == ("66.0", "+0.1")
    assert (base["HumanEval"][RUN], base["HumanEval"][DELTA], base["MATH"][DELTA]) == ("36.0", "+0.6", "-1.4")
    assert (base["ARC-C"][RUN], base["ARC-C"][DELTA], base["GSM8K"][DELTA]) == ("47.0", "n/c", "n/c")
    # missing cells are empty in CSV and "–" in Markdown, never 0
    assert (base["HellaSwag"][RUN], base["HellaSwag"][DELTA]) == ("", "")
    assert base["Average"][RUN] == "" and base["Average"]["LLaDA-8B-Base"] == "51.1"
    markdown = (results_dir / "leaderboard" / "leaderboard.md").read_text(encoding="utf-8")
    assert "| HellaSwag | 76.6 | 70.5 | 73.3 | 79.0 | – | – |" in markdown
    assert "| ARC-C | 60.8 | 45.9 | 59.8 | 51.5 | 47.0 ± 1.5 | n/c |" in markdown  # ± the standard error
    assert "ARC-C: the llada-base sources do not state whether the paper shows acc or acc_norm" in markdown
    assert "MATH ← llada_base_math [exact_match,none, hendrycks_math, n=5000]" in markdown
    assert (results_dir / "leaderboard" / "other.csv").read_text() == "Task\n"
    instruct = read_csv(results_dir / "leaderboard" / "instruct.csv")
    assert len(instruct["MMLU"]) == 5  # no run of the instruct table: paper columns only


def test_partial_runs_show_only_when_asked_and_are_never_compared(results_dir):
    assert report.main(["-i", str(results_dir), "--include-partial"]) == 0
    base = read_csv(results_dir / "leaderboard" / "base.csv")
    # the demo file's task names are outside the registry: shown, with no protocol and no difference
    demo = "illada-demo (run, no protocol, partial)"
    assert base["ARC-C"][demo] == "25.0" and list(base["ARC-C"])[-1] == demo
    other = read_csv(results_dir / "leaderboard" / "other.csv")
    assert other == {"illada_sanity_mc": {"Task": "illada_sanity_mc", "illada-demo (base)": "96.0"}}


def test_complete_comparable_run_gets_an_average_difference(tmp_path, monkeypatch):
    cells = dict(LLADA_FULL) | {"llada_base_hellaswag": ("acc_norm,none", 0.725, 0.004, 10042),
                                "llada_base_mbpp": ("pass@1,none", 0.42, 0.02, 500)}
    root = make_results_dir(tmp_path, {"run.json": protocol_run("LLaDA-8B-Base", cells)})
    assert report.main(["-i", str(root)]) == 0
    base = read_csv(root / "leaderboard" / "base.csv")
    assert base["Average"][RUN] != "" and base["Average"][DELTA] == "n/c"  # llada-base leaves 4 cells open
    # were every setting known, the average difference would be drawn
    monkeypatch.setitem(PROTOCOLS, "llada-base", dataclasses.replace(PROTOCOLS["llada-base"], unstated={}))
    assert report.main(["-i", str(root)]) == 0
    base = read_csv(root / "leaderboard" / "base.csv")
    paper = [65.9, 49.7, 45.9, 70.5, 70.3, 31.4, 35.4, 40.0]
    run = [66.0, 50.0, 47.0, 72.5, 71.0, 30.0, 36.0, 42.0]
    assert base["Average"][DELTA] == report.format_score((sum(run) - sum(paper)) / 8, signed=True)


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
    files = report.render(load_scores(results_dir), include_partial=True)
    latex = files["leaderboard.tex"].decode()
    assert latex.count("\\begin{table}") == 3 and latex.count("\\toprule") == 3
    # fits a two-column paper: scaled to the column width, no file paths under it
    assert latex.count("\\resizebox{\\linewidth}{!}{%") == 3 and "runs/" not in latex and ".json" not in latex
    assert "LLaDA-8B-Base (run, llada-base) & $\\Delta$ vs LLaDA-8B-Base" in latex
    assert "illada\\_sanity\\_mc" in latex and "HellaSwag & 76.6 & 70.5 & 73.3 & 79.0 & -- & --" in latex
    page = files["leaderboard.html"].decode()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for external in ("http:", "https:", "<script", "src=", "<link"):
        assert external not in page  # self-contained
    assert '<td class="up">+0.6</td>' in page and page.count("<table>") == 3
    assert "runs/llada/results_2026.json" in page  # the web page names its files
    tidy = list(csv.DictReader(io.StringIO(files["scores.csv"].decode())))
    run = next(row for row in tidy if row["origin"] == "run" and row["benchmark"] == "MATH"
               and row["model"] == "LLaDA-8B-Base")
    assert (run["score"], run["metric"], run["n"], run["protocol"], run["dataset"], run["full"]) == (
        "30", "exact_match,none", "5000", "llada-base", "hendrycks_math", "True")


def test_a_malformed_file_is_named_and_the_others_still_reported(results_dir, capsys):
    (results_dir / "runs" / "broken.json").write_text("{not json", encoding="utf-8")
    (results_dir / "runs" / "samples.json").write_text(json.dumps({"doc_id": 0, "resps": []}), encoding="utf-8")
    assert report.main(["-i", str(results_dir)]) == 0
    captured = capsys.readouterr()
    assert "broken.json: not valid JSON" in captured.err
    assert "samples.json: has no 'results' object" in captured.err
    assert "from 2 run file(s)" in captured.out
    base = read_csv(results_dir / "leaderboard" / "base.csv")
    assert base["ARC-C"][RUN] == "47.0"


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


def test_llada_instruct_hellaswag_and_arc_runs_are_shown_and_never_compared(tmp_path):
    # LLaDA-8B-Instruct's HellaSwag and ARC-C are published in the LLaDA paper only: no table row
    cells = {"llada_instruct_mmlu": ("exact_match,none", 0.655, 0.004, 14042),
             "llada_instruct_hellaswag": ("exact_match,none", 0.746, 0.004, 10042),
             "llada_instruct_arc_challenge": ("exact_match,none", 0.885, 0.019, 295)}
    root = make_results_dir(tmp_path, {"run.json": protocol_run("LLaDA-8B-Instruct", cells)})
    assert report.main(["-i", str(root)]) == 0
    instruct = read_csv(root / "leaderboard" / "instruct.csv")
    assert "HellaSwag" not in instruct and "ARC-C" not in instruct
    column = "LLaDA-8B-Instruct (run, llada-instruct)"
    assert (instruct["MMLU"][column], instruct["MMLU"]["Δ vs LLaDA-8B-Instruct"]) == (
        "65.5", report.format_score(0.0, signed=True))
    # their cells are run cells among the other tasks, with no difference; ARC-C's 295 four-option
    # questions are the whole task, so the run is not partial
    other = read_csv(root / "leaderboard" / "other.csv")
    assert other["HellaSwag"] == {"Task": "HellaSwag", "LLaDA-8B-Instruct (instruct)": "74.6"}
    assert other["ARC-C"] == {"Task": "ARC-C", "LLaDA-8B-Instruct (instruct)": "88.5"}
    markdown = (root / "leaderboard" / "leaderboard.md").read_text(encoding="utf-8")
    assert "ARC-C ← llada_instruct_arc_challenge [exact_match,none, arc_challenge, n=295]" in markdown
