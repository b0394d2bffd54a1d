"""``illada-eval plot``: one labelled bar per benchmark, comparable cells only, error bars,
reproducible 300 dpi PNG and PDF files."""
from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
from matplotlib.patches import Rectangle
from test_results import LLADA_FULL, START, demo_run, make_results_dir, protocol_run

from illada_eval import plot
from illada_eval.results import load_scores

# iLLaDA-8B-Base minus LLaDA-8B-Base / Qwen2.5-7B, from the paper's Table 2 by hand
BASE_VS_LLADA = {"MMLU": 74.8 - 65.9, "BBH": 71.3 - 49.7, "ARC-C": 60.8 - 45.9, "HellaSwag": 76.6 - 70.5,
                 "GSM8K": 81.9 - 70.3, "MATH": 38.4 - 31.4, "HumanEval": 50.0 - 35.4, "MBPP": 57.8 - 40.0}
BASE_VS_QWEN = {"MMLU": 74.8 - 71.9, "BBH": 71.3 - 63.9, "ARC-C": 60.8 - 51.5, "HellaSwag": 76.6 - 79.0,
                "GSM8K": 81.9 - 78.9, "MATH": 38.4 - 41.1, "HumanEval": 50.0 - 56.7, "MBPP": 57.8 - 63.6}
INSTRUCT_BENCHMARKS = ["MMLU", "MMLU-Pro", "MMLU-Redux", "GSM8K", "MATH", "HumanEval", "MBPP"]
RUN_FIGURE = "run_llada-8b-base_llada-base_base"


def bars(ax) -> dict[str, float]:
    """Benchmark -> bar length, read back from the drawn axes (top bar first)."""
    rects = sorted((p for p in ax.patches if isinstance(p, Rectangle)), key=lambda r: -r.get_y())
    labels = {tick.get_position()[1]: tick.get_text() for tick in ax.get_yticklabels()}
    lengths = {labels[round(r.get_y() + r.get_height() / 2)]: r.get_width() for r in rects}
    assert len(lengths) == len(rects)  # one bar per benchmark, none stacked on another
    return lengths


def error_bars(ax) -> list[float]:
    """Half-widths of the horizontal error bars, top bar first."""
    segments = ax.collections[0].get_segments()
    return [abs(seg[1][0] - seg[0][0]) / 2 for seg in sorted(segments, key=lambda seg: -seg[0][1])]


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    root = make_results_dir(tmp_path_factory.mktemp("plot"), {"llada.json": protocol_run("LLaDA-8B-Base", LLADA_FULL),
                                                              "demo.json": demo_run()})
    return plot.build_figures(load_scores(root))


def test_one_figure_per_comparison_and_comparable_run(figures):
    # the demo ran with --limit: no figure of it
    assert sorted(figures) == ["paper_deltas_base", "paper_deltas_instruct", RUN_FIGURE]


def test_paper_deltas_have_one_bar_per_benchmark_with_the_paper_values(figures):
    left, right = figures["paper_deltas_base"].axes
    assert list(bars(left)) == list(BASE_VS_LLADA)  # paper order, top to bottom
    assert bars(left) == pytest.approx(BASE_VS_LLADA)
    assert bars(right) == pytest.approx(BASE_VS_QWEN)
    assert "iLLaDA-8B-Base − LLaDA-8B-Base" in left.get_title() and "average +12.8" in left.get_title()
    assert "iLLaDA-8B-Base − Qwen2.5-7B" in right.get_title()
    assert "own protocol" in figures["paper_deltas_base"].get_suptitle()
    # value labels, top to bottom, with a true minus sign
    assert [t.get_text() for t in left.texts] == ["+8.9", "+21.6", "+14.9", "+6.1", "+11.6", "+7.0", "+14.6", "+17.8"]
    assert [t.get_text() for t in right.texts] == ["+2.9", "+7.4", "+9.3", "−2.4", "+3.0", "−2.7", "−6.7", "−5.8"]
    assert left.get_xlim() == right.get_xlim()  # one x-scale across the panels
    for ax in figures["paper_deltas_instruct"].axes:
        assert list(bars(ax)) == INSTRUCT_BENCHMARKS


def test_run_minus_published_on_comparable_cells_with_error_bars(figures):
    (ax,) = figures[RUN_FIGURE].axes
    # ARC-C and GSM8K are not comparable (llada-base leaves their metric open): left out
    assert bars(ax) == pytest.approx({"MMLU": 66.0 - 65.9, "BBH": 50.0 - 49.7, "MATH": 30.0 - 31.4,
                                      "HumanEval": 36.0 - 35.4})
    assert error_bars(ax) == pytest.approx([0.4, 0.6, 0.6, 3.7])  # the run's standard errors, in points
    assert ax.get_title().startswith("LLaDA-8B-Base (run, llada-base) − LLaDA-8B-Base (paper)")
    assert "2 not comparable cell(s) left out" in ax.get_title()


def test_paired_bootstrap_standard_error_matches_the_formula():
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, 2, 400).astype(float), rng.integers(0, 2, 400).astype(float)
    differences = first - second
    # the bootstrap estimates std(d) / sqrt(n); with 2000 draws its own relative error is ~1.6%
    expected = differences.std(ddof=0) / math.sqrt(len(differences))
    assert plot.paired_bootstrap_se(list(first), list(second)) == pytest.approx(expected, rel=0.1)
    assert plot.paired_bootstrap_se(list(first), list(first)) == 0.0  # a run against itself


def test_our_runs_of_the_papers_comparison_pair_their_documents(tmp_path):
    """iLLaDA-8B-Base (diffusion) against Qwen2.5-7B (lm-eval hf) on the same HumanEval tasks:
    the error bar comes from the documents both logged, not from two independent errors."""
    rng = np.random.default_rng(1)
    passed = {"iLLaDA-8B-Base": rng.integers(0, 2, 164), "Qwen2.5-7B": rng.integers(0, 2, 164)}
    stamp = "2026-01-01T00-00-00"
    runs = {}
    for model, backend in (("iLLaDA-8B-Base", "illada"), ("Qwen2.5-7B", "hf")):
        score = float(passed[model].mean())
        runs[f"{model}/results_{stamp}.json"] = protocol_run(
            model, {"illada_humaneval": ("pass@1,none", score, 0.037, 164)}, backend=backend, date=START)
    root = make_results_dir(tmp_path, runs)
    for model in passed:
        lines = [json.dumps({"doc_id": i, "filter": "none", "pass@1": float(v)}) for i, v in enumerate(passed[model])]
        (root / "runs" / model / f"samples_illada_humaneval_{stamp}.jsonl").write_text("\n".join(lines) + "\n")
    figures = plot.build_figures(load_scores(root), root=root)
    (ax,) = figures["runs_illada-8b-base_vs_qwen2.5-7b_base"].axes
    expected = 100 * plot.paired_bootstrap_se(list(passed["iLLaDA-8B-Base"]), list(passed["Qwen2.5-7B"]))
    assert error_bars(ax) == pytest.approx([expected])
    assert expected != pytest.approx(math.sqrt(2) * 3.7, rel=0.01)  # not the independent combination
    assert "qwen2.5-base" in ax.get_title() and "illada-base" in ax.get_title()


def png_dpi(data: bytes) -> float:
    """Pixels per inch from a PNG's pHYs chunk."""
    at = data.index(b"pHYs")
    per_metre = struct.unpack(">I", data[at + 4:at + 8])[0]
    return per_metre * 0.0254


def test_files_are_300_dpi_png_and_reproducible_pdf(tmp_path, capsys):
    root = make_results_dir(tmp_path, {"llada.json": protocol_run("LLaDA-8B-Base", LLADA_FULL)})
    assert plot.main(["-i", str(root)]) == 0
    assert plot.main(["-i", str(root), "-o", str(tmp_path / "again")]) == 0
    out = root / "plots"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{stem}.{ext}" for stem in ("paper_deltas_base", "paper_deltas_instruct", RUN_FIGURE)
                           for ext in ("png", "pdf"))
    for name in names:
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    png = (out / "paper_deltas_base.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png_dpi(png) == pytest.approx(300, abs=1)
    assert (out / "paper_deltas_base.pdf").read_bytes().startswith(b"%PDF")
    assert "6 files from 1 run file(s)" in capsys.readouterr().out


def test_unwritable_plot_folder_is_a_clear_error(tmp_path, capsys):
    root = make_results_dir(tmp_path, {})
    (tmp_path / "blocker").write_text("x")
    assert plot.main(["-i", str(root), "-o", str(tmp_path / "blocker" / "plots")]) == 1
    assert "illada-eval plot: error: cannot write to output directory" in capsys.readouterr().err
