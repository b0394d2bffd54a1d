"""``illada-eval plot``: one labelled bar per benchmark, reproducible files."""
from __future__ import annotations

import pytest
from matplotlib.patches import Rectangle
from test_results import demo_run, llada_base_run, make_results_dir

from illada_eval import plot
from illada_eval.results import load_scores

# iLLaDA-8B-Base minus LLaDA-8B-Base / Qwen2.5-7B, from the paper's Table 2 by hand
BASE_VS_LLADA = {"MMLU": 74.8 - 65.9, "BBH": 71.3 - 49.7, "ARC-C": 60.8 - 45.9, "HellaSwag": 76.6 - 70.5,
                 "GSM8K": 81.9 - 70.3, "MATH": 38.4 - 31.4, "HumanEval": 50.0 - 35.4, "MBPP": 57.8 - 40.0}
BASE_VS_QWEN = {"MMLU": 74.8 - 71.9, "BBH": 71.3 - 63.9, "ARC-C": 60.8 - 51.5, "HellaSwag": 76.6 - 79.0,
                "GSM8K": 81.9 - 78.9, "MATH": 38.4 - 41.1, "HumanEval": 50.0 - 56.7, "MBPP": 57.8 - 63.6}
INSTRUCT_BENCHMARKS = ["MMLU", "MMLU-Pro", "MMLU-Redux", "GSM8K", "MATH", "HumanEval", "MBPP"]


def bars(ax) -> dict[str, float]:
    """Benchmark -> bar length, read back from the drawn axes (top bar first)."""
    rects = sorted((p for p in ax.patches if isinstance(p, Rectangle)), key=lambda r: -r.get_y())
    labels = {tick.get_position()[1]: tick.get_text() for tick in ax.get_yticklabels()}
    lengths = {labels[round(r.get_y() + r.get_height() / 2)]: r.get_width() for r in rects}
    assert len(lengths) == len(rects)  # one bar per benchmark, none stacked on another
    return lengths


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    root = make_results_dir(tmp_path_factory.mktemp("plot"), {"llada.json": llada_base_run(), "demo.json": demo_run()})
    return plot.build_figures(load_scores(root))


def test_one_figure_per_comparison_and_run(figures):
    assert sorted(figures) == ["paper_deltas_base", "paper_deltas_instruct", "run_illada-demo_base",
                               "run_llada-8b-base_base"]


def test_paper_deltas_have_one_bar_per_benchmark_with_the_paper_values(figures):
    left, right = figures["paper_deltas_base"].axes
    assert list(bars(left)) == list(BASE_VS_LLADA)  # paper order, top to bottom
    assert bars(left) == pytest.approx(BASE_VS_LLADA)
    assert bars(right) == pytest.approx(BASE_VS_QWEN)
    assert "iLLaDA-8B-Base − LLaDA-8B-Base" in left.get_title() and "average +12.8" in left.get_title()
    assert "iLLaDA-8B-Base − Qwen2.5-7B" in right.get_title()
    # value labels, top to bottom
    assert [t.get_text() for t in left.texts] == ["+8.9", "+21.6", "+14.9", "+6.1", "+11.6", "+7.0", "+14.6", "+17.8"]
    assert [t.get_text() for t in right.texts] == ["+2.9", "+7.4", "+9.3", "-2.4", "+3.0", "-2.7", "-6.7", "-5.8"]
    for ax in figures["paper_deltas_instruct"].axes:
        assert list(bars(ax)) == INSTRUCT_BENCHMARKS


def test_run_minus_published(figures):
    (ax,) = figures["run_llada-8b-base_base"].axes
    # run scores from the sample file minus the paper's LLaDA-8B-Base
    assert bars(ax) == pytest.approx({"MMLU": 66.0 - 65.9, "BBH": 50.0 - 49.7, "ARC-C": 47.0 - 45.9,
                                      "GSM8K": 71.31 - 70.3, "MATH": 31.5 - 31.4, "HumanEval": 35.37 - 35.4})
    assert ax.get_title().startswith("LLaDA-8B-Base (run) − LLaDA-8B-Base (paper)")
    (demo,) = figures["run_illada-demo_base"].axes
    # the paper has no illada-demo: it is compared with the paper's iLLaDA-8B-Base, and says so
    assert bars(demo) == pytest.approx({"ARC-C": 25.0 - 60.8, "GSM8K": 0.0 - 81.9})
    assert "illada-demo (run) − iLLaDA-8B-Base (paper)" in demo.get_title() and "no such model" in demo.get_title()


def test_files_are_png_and_reproducible_svg(tmp_path, capsys):
    root = make_results_dir(tmp_path, {"demo.json": demo_run()})
    assert plot.main(["-i", str(root)]) == 0
    assert plot.main(["-i", str(root), "-o", str(tmp_path / "again")]) == 0
    out = root / "plots"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{stem}.{ext}" for stem in ("paper_deltas_base", "paper_deltas_instruct",
                                                        "run_illada-demo_base") for ext in ("png", "svg"))
    for name in names:
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    assert (out / "paper_deltas_base.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = (out / "paper_deltas_base.svg").read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<dc:date>" not in svg and "+21.6" in svg
    assert "6 files from 1 run file(s)" in capsys.readouterr().out


def test_unwritable_plot_folder_is_a_clear_error(tmp_path, capsys):
    root = make_results_dir(tmp_path, {})
    (tmp_path / "blocker").write_text("x")
    assert plot.main(["-i", str(root), "-o", str(tmp_path / "blocker" / "plots")]) == 1
    assert "illada-eval plot: error: cannot write to output directory" in capsys.readouterr().err
