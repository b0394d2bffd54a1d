"""``illada-eval plot``: score-difference bar charts, 300 dpi PNG and PDF, from ``results/``.

Writes into ``results/plots/``:

- ``paper_deltas_base`` / ``paper_deltas_instruct``: iLLaDA − LLaDA and iLLaDA − Qwen2.5-7B
  per benchmark, as the paper reports them (each column under its own protocol, which the
  titles say);
- ``run_<model>_<protocol>_<table>``: a run minus the published column it is compared with, on the
  cells where the two are comparable (same protocol, dataset subset and metric, whole dataset),
  with the run's standard error as error bars;
- ``runs_<model>_vs_<model>_<table>``: two of our runs of the paper's comparison (iLLaDA against
  LLaDA or Qwen2.5) under their own protocols, with paired-bootstrap error bars over the
  documents both logged (``--log-samples``), else the two standard errors combined.

Panels of a figure share one x-scale; values carry a true minus sign. Figures are drawn with
matplotlib's Agg canvas directly (no pyplot state); files are byte-identical across runs.
"""
from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from illada_eval.report import run_command
from illada_eval.results import PRESETS, Leaderboard, RunColumn, format_score, leaderboard

# per table: the paper's model and the ones it is compared with
PAPER_COMPARISONS = {
    "base": ("iLLaDA-8B-Base", ("LLaDA-8B-Base", "Qwen2.5-7B")),
    "instruct": ("iLLaDA-8B-Instruct", ("LLaDA-8B-Instruct", "Qwen2.5-7B-Instruct")),
}
# blue up, red down (distinguishable for colour-blind readers too), grey for a rounded 0.0
COLORS, FLAT = {"+": "#2166ac", "-": "#b2182b"}, "#999999"
STYLE = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same PNG on every machine
    "font.size": 9,
    "axes.unicode_minus": True,
    "pdf.fonttype": 42,  # TrueType in the PDF: editable text, as journals ask
}
DPI = 300
BOOTSTRAP_DRAWS, BOOTSTRAP_SEED = 2000, 1234
MINUS = "\u2212"


@dataclass(frozen=True)
class Panel:
    """One bar chart: a difference per benchmark, with optional error bars (one standard error)."""

    title: str
    deltas: pd.Series  # index: benchmarks (top to bottom), values: points
    errors: pd.Series | None = None  # same index; NaN where unknown


def signed(value: float) -> str:
    """``+1.2`` / ``−0.4`` (a true minus sign) / ``0.0``."""
    return format_score(value, signed=True).replace("-", MINUS)


def paper_panels(board: Leaderboard) -> list[Panel]:
    """iLLaDA minus each model it is compared with, on the benchmarks both have."""
    ours, others = PAPER_COMPARISONS[board.table]
    panels = []
    for other in others:
        deltas = (board.published[ours] - board.published[other]).dropna()
        average = board.average(board.published[ours])
        other_average = board.average(board.published[other])
        mean = "" if average is None or other_average is None else signed(average - other_average)
        mean = mean and f"\naverage {mean}"
        panels.append(Panel(f"{ours} {MINUS} {other}{mean}", deltas))
    return panels


def run_panels(board: Leaderboard) -> dict[str, Panel]:
    """Per run column: run − the published column it is compared with, comparable cells only."""
    panels = {}
    for run in board.runs:
        if run.reference is None:
            continue
        deltas = pd.Series(run.deltas(board.published[run.reference].to_dict()))
        order = [bench for bench in board.benchmarks if bench in deltas.index]
        deltas = deltas.reindex(order)
        errors = pd.Series({bench: run.stderrs.get(bench, math.nan) for bench in order}, dtype=float)
        left_out = len(run.comparisons) - len(order)
        note = f"\n{left_out} not comparable cell(s) left out (see the leaderboard notes)" if left_out else ""
        title = f"{run.model} (run, {run.protocol}) {MINUS} {run.reference} (paper){note}"
        panels[f"run_{slug(run.model)}_{slug(run.protocol or 'none')}_{board.table}"] = Panel(title, deltas, errors)
    return panels


def runs_panels(board: Leaderboard, root: Path | None) -> dict[str, Panel]:
    """Our runs of the paper's own comparison: iLLaDA's run minus each compared model's run."""
    ours, others = PAPER_COMPARISONS[board.table]
    by_model = {run.model.lower(): run for run in board.runs}
    panels = {}
    first = by_model.get(ours.lower())
    for other in others:
        second = by_model.get(other.lower())
        if first is None or second is None:
            continue
        common = [bench for bench in board.benchmarks if bench in first.scores and bench in second.scores]
        deltas = pd.Series({bench: first.scores[bench] - second.scores[bench] for bench in common}, dtype=float)
        errors = pd.Series({bench: difference_error(first, second, bench, root) for bench in common}, dtype=float)
        title = (f"{first.model} (run, {first.protocol}) {MINUS} {second.model} (run, {second.protocol})\n"
                 "each under its own protocol, as the paper compares them")
        panels[f"runs_{slug(first.model)}_vs_{slug(second.model)}_{board.table}"] = Panel(title, deltas, errors)
    return panels


def difference_error(first: RunColumn, second: RunColumn, bench: str, root: Path | None) -> float:
    """Standard error of a run − run difference: a paired bootstrap over the documents both runs
    logged, else the two standard errors combined as if independent (NaN when unknown)."""
    paired = [sample_scores(run, bench, root) for run in (first, second)]
    if all(paired):
        common = sorted(set(paired[0]) & set(paired[1]))
        if common:
            return 100.0 * paired_bootstrap_se([paired[0][d] for d in common], [paired[1][d] for d in common])
    errors = [run.stderrs.get(bench, math.nan) for run in (first, second)]
    return math.sqrt(errors[0] ** 2 + errors[1] ** 2)


def paired_bootstrap_se(first: list[float], second: list[float]) -> float:
    """Standard error of mean(first − second) by resampling documents (the same draw for both)."""
    differences = np.asarray(first, dtype=float) - np.asarray(second, dtype=float)
    draws = np.random.default_rng(BOOTSTRAP_SEED).integers(0, len(differences), (BOOTSTRAP_DRAWS, len(differences)))
    return float(differences[draws].mean(axis=1).std(ddof=1))


def sample_scores(run: RunColumn, bench: str, root: Path | None) -> dict[tuple[str, int], float]:
    """Per-document scores a run logged for a benchmark, keyed by (task, doc_id); empty when not
    logged. lm-eval writes them as ``samples_<task>_<time>.jsonl`` beside ``results_<time>.json``,
    one file per task (a group's are its subtasks')."""
    if root is None:
        return {}
    row = run.rows[run.rows["benchmark"] == bench].iloc[0]
    results = root / row["source"]
    stamp = results.stem.removeprefix("results_")
    children = json.loads(results.read_text(encoding="utf-8")).get("group_subtasks") or {}
    metric, _, filter_name = row["metric"].partition(",")
    scores = {}
    for task in leaf_tasks(row["task"], children):
        path = results.parent / f"samples_{task}_{stamp}.jsonl"
        if not path.is_file():
            return {}
        for line in path.read_text(encoding="utf-8").splitlines():
            sample = json.loads(line)
            if sample.get("filter", "none") == filter_name and metric in sample:
                scores[(task, sample["doc_id"])] = float(sample[metric])
    return scores


def leaf_tasks(task: str, children: dict[str, list[str]]) -> list[str]:
    subtasks = children.get(task) or []
    return [leaf for child in subtasks for leaf in leaf_tasks(child, children)] if subtasks else [task]


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-") or "model"


def draw(panels: list[Panel], title: str) -> Figure:
    """Side-by-side horizontal bar charts on one shared x-scale."""
    rows = max(len(panel.deltas) for panel in panels)
    values = np.concatenate([panel.deltas.to_numpy(dtype=float) for panel in panels])
    spans = np.concatenate([np.nan_to_num(panel.errors.to_numpy(dtype=float)) if panel.errors is not None
                            else np.zeros(len(panel.deltas)) for panel in panels])
    low = min(0.0, float((values - spans).min(initial=0.0)))
    high = max(0.0, float((values + spans).max(initial=0.0)))
    room = 0.22 * max(high - low, 1.0)  # for the value labels beyond the bar ends
    limits = (low - (room if low < 0 else 0.02 * room), high + (room if high > 0 else 0.02 * room))
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(max(4.6 * len(panels), 6.4), 0.42 * rows + 1.8), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, len(panels), sharex=True, squeeze=False)[0]
        for ax, panel in zip(axes, panels):
            deltas = panel.deltas.to_numpy(dtype=float)
            positions = list(range(len(deltas)))[::-1]  # first benchmark on top, as in the tables
            labels = [signed(v) for v in deltas]
            colors = [COLORS.get(label[0].replace(MINUS, "-"), FLAT) for label in labels]  # by the shown sign
            errors = None if panel.errors is None else np.nan_to_num(panel.errors.to_numpy(dtype=float))
            bars = ax.barh(positions, deltas, color=colors, height=0.65, xerr=errors,
                           error_kw={"ecolor": "#333", "elinewidth": 0.8, "capsize": 2})
            ax.bar_label(bars, labels=labels, padding=3, fontsize=8)
            ax.set_yticks(positions, list(panel.deltas.index))
            ax.axvline(0, color="#333", linewidth=0.8)
            ax.set_xlim(*limits)
            ax.set_xlabel("difference (points)" + (", ± one standard error" if errors is not None else ""))
            ax.set_title(panel.title, fontsize=9)
            ax.spines[["top", "right"]].set_visible(False)
            ax.grid(axis="x", color="#ddd", linewidth=0.5)
            ax.set_axisbelow(True)
        figure.suptitle(title, fontsize=10)
    return figure


def build_figures(scores: pd.DataFrame, include_partial: bool = False, root: Path | None = None) -> dict[str, Figure]:
    """Every figure, by file stem (``root``: the results folder, where logged samples are read)."""
    figures = {}
    for preset in PRESETS:
        board = leaderboard(scores, preset, include_partial)
        name = preset.capitalize()
        figures[f"paper_deltas_{preset}"] = draw(
            paper_panels(board), f"{name} models: published scores, each column under its own protocol")
        for stem, panel in run_panels(board).items():
            if len(panel.deltas):
                figures[stem] = draw([panel], f"{name} table: our run against the paper, comparable cells")
        for stem, panel in runs_panels(board, root).items():
            if len(panel.deltas):
                figures[stem] = draw([panel], f"{name} table: our runs of the paper's comparison")
    return figures


def render(scores: pd.DataFrame, include_partial: bool = False, root: Path | None = None) -> dict[str, bytes]:
    """300 dpi PNG and PDF bytes of every figure, by file name."""
    files = {}
    for stem, figure in build_figures(scores, include_partial, root).items():
        with matplotlib.rc_context(STYLE):
            for fmt, metadata in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None})):
                buffer = io.BytesIO()
                figure.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
                files[f"{stem}.{fmt}"] = buffer.getvalue()
    return files


def main(argv: list[str] | None = None) -> int:
    return run_command("illada-eval plot", argv, "Draw score-difference plots from results/.", "plots",
                       lambda scores, args: render(scores, args.include_partial, args.input))
