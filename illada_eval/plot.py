"""``illada-eval plot``: score-difference bar charts, PNG and SVG, from ``results/``.

Writes into ``results/plots/``:

- ``paper_deltas_base`` / ``paper_deltas_instruct``: iLLaDA − LLaDA and iLLaDA − Qwen2.5-7B
  per benchmark, as the paper reports them (two panels, one bar per benchmark);
- ``run_<model>_<table>``: each run minus the paper's score of the same model, or minus the
  paper's iLLaDA of that table when the paper has no such model (e.g. our demo model).

Bars are labelled with their values. Figures are drawn with matplotlib's Agg canvas directly
(no pyplot state); SVGs are byte-identical across runs (fixed ``svg.hashsalt``, no date).
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from illada_eval.report import run_command
from illada_eval.results import PRESETS, Leaderboard, format_score, leaderboard

# per table: the paper's model and the ones it is compared with
PAPER_COMPARISONS = {
    "base": ("iLLaDA-8B-Base", ("LLaDA-8B-Base", "Qwen2.5-7B")),
    "instruct": ("iLLaDA-8B-Instruct", ("LLaDA-8B-Instruct", "Qwen2.5-7B-Instruct")),
}
# blue up, red down (distinguishable for colour-blind readers too), grey for a rounded 0.0
COLORS, FLAT = {"+": "#2166ac", "-": "#b2182b"}, "#999999"
STYLE = {
    "svg.hashsalt": "illada-eval",  # fixed ids in the SVG, so files are reproducible
    "svg.fonttype": "none",  # text stays text: small, searchable SVGs
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same PNG on every machine
    "font.size": 9,
}


@dataclass(frozen=True)
class Panel:
    """One bar chart: a difference per benchmark."""

    title: str
    deltas: pd.Series  # index: benchmarks (top to bottom), values: points


def paper_panels(board: Leaderboard) -> list[Panel]:
    """iLLaDA minus each model it is compared with, on the benchmarks both have."""
    ours, others = PAPER_COMPARISONS[board.table]
    panels = []
    for other in others:
        deltas = (board.published[ours] - board.published[other]).dropna()
        average = board.average(board.published[ours])
        other_average = board.average(board.published[other])
        mean = "" if average is None or other_average is None else format_score(average - other_average, signed=True)
        mean = mean and f"\naverage {mean}"
        panels.append(Panel(f"{ours} − {other}{mean}", deltas))
    return panels


def run_panels(board: Leaderboard) -> dict[str, Panel]:
    """Per run: run − paper, against the same model when published, else the table's iLLaDA."""
    panels = {}
    for run in board.runs:
        reference = run.reference or PAPER_COMPARISONS[board.table][0]
        paper = board.published[reference]
        scores = pd.Series(run.scores).reindex([b for b in board.benchmarks if b in run.scores])
        deltas = (scores - paper.reindex(scores.index)).dropna()
        label = "" if run.reference else "\n(the paper has no such model: compared with its iLLaDA)"
        title = f"{run.model} (run) − {reference} (paper){label}"
        panels[f"run_{slug(run.model)}_{board.table}"] = Panel(title, deltas)
    return panels


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-") or "model"


def draw(panels: list[Panel], title: str) -> Figure:
    """Side-by-side horizontal bar charts sharing the benchmark axis."""
    rows = max(len(panel.deltas) for panel in panels)
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(max(4.6 * len(panels), 6.4), 0.42 * rows + 1.6), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, len(panels), sharey=False, squeeze=False)[0]
        for ax, panel in zip(axes, panels):
            values = panel.deltas.to_numpy(dtype=float)
            positions = range(len(values))[::-1]  # first benchmark on top, as in the tables
            labels = [format_score(v, signed=True) for v in values]
            colors = [COLORS.get(label[0], FLAT) for label in labels]  # by the sign the label shows
            bars = ax.barh(list(positions), values, color=colors, height=0.65)
            ax.bar_label(bars, labels=labels, padding=3, fontsize=8)
            ax.set_yticks(list(positions), list(panel.deltas.index))
            ax.axvline(0, color="#333", linewidth=0.8)
            low, high = min(0.0, values.min(initial=0.0)), max(0.0, values.max(initial=0.0))
            room = 0.22 * max(high - low, 1.0)  # for the value labels beyond the bar ends
            ax.set_xlim(low - (room if low < 0 else 0.02 * room), high + (room if high > 0 else 0.02 * room))
            ax.set_xlabel("difference (points)")
            ax.set_title(panel.title, fontsize=9)
            ax.spines[["top", "right"]].set_visible(False)
            ax.grid(axis="x", color="#ddd", linewidth=0.5)
            ax.set_axisbelow(True)
        figure.suptitle(title, fontsize=10)
    return figure


def build_figures(scores: pd.DataFrame) -> dict[str, Figure]:
    """Every figure, by file stem."""
    figures = {}
    for preset in PRESETS:
        board = leaderboard(scores, preset)
        figures[f"paper_deltas_{preset}"] = draw(paper_panels(board), f"{preset.capitalize()} models: published scores")
        for stem, panel in run_panels(board).items():
            if len(panel.deltas):
                figures[stem] = draw([panel], f"{preset.capitalize()} preset: our run against the paper")
    return figures


def render(scores: pd.DataFrame) -> dict[str, bytes]:
    """PNG and SVG bytes of every figure, by file name."""
    files = {}
    for stem, figure in build_figures(scores).items():
        with matplotlib.rc_context(STYLE):
            for fmt, metadata in (("png", {"Software": None}), ("svg", {"Date": None})):
                buffer = io.BytesIO()
                figure.savefig(buffer, format=fmt, dpi=110, metadata=metadata)
                files[f"{stem}.{fmt}"] = buffer.getvalue()
    return files


def main(argv: list[str] | None = None) -> int:
    return run_command("illada-eval plot", argv, "Draw score-difference plots from results/.", "plots", render)
