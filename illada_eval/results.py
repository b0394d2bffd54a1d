"""Scores in one tidy table: the papers' published numbers and our lm-eval runs.

``results/published/scores.csv`` holds the papers' tables; ``results/runs/**/*.json`` holds
lm-eval result files (ours, or any a user drops in). :func:`load_scores` reads both into one
pandas table with a row per (model, benchmark) score, on a 0-100 scale; :func:`leaderboard`
lays one paper table (``base`` or ``instruct``) out with the runs beside it. The report and
the plots are both built from these two functions.

Task names map to the paper's benchmark names through the registry's benchmarks and protocols,
which also say which metric is a cell's headline number. Every cell carries the protocol,
dataset and metric it came from and whether it scored the whole dataset: :func:`comparison`
says whether a run may be compared with a published cell, and why not.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_DOWN, Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from illada_eval.registry import (
    BENCHMARK_BY_KEY,
    BENCHMARK_BY_NAME,
    BENCHMARKS,
    PROTOCOLS,
    Benchmark,
    TaskProtocol,
    protocol_of_column,
    protocol_of_task,
)

logger = logging.getLogger(__name__)

PUBLISHED_CSV = Path("published") / "scores.csv"
RUNS_DIR = "runs"
PRESETS = ("base", "instruct")  # the paper's two leaderboard tables
MISSING = "–"  # shown for a cell without a score; a missing score is never 0

COLUMNS = [
    "origin",  # "paper" or "run"
    "table",  # paper table ("base", "instruct", "scoring_ablation", ...) or the run's preset
    "model",
    "model_kind",
    "benchmark",  # the paper's name (ARC-C, MMLU, ...); empty for tasks outside the papers
    "task",  # the lm-eval task or group name a run score came from
    "metric",  # the lm-eval metric key ("acc_norm,none", "exact_match,flexible-extract", ...)
    "protocol",  # the registry protocol the score was produced under; None when not known
    "dataset",  # the registry dataset (math500 and hendrycks_math are different subsets of MATH)
    "full",  # scored the whole dataset (False: a --limit run)
    "score",  # 0-100
    "stderr",  # 0-100, when lm-eval gave one
    "n",  # documents scored (after --limit)
    "shots",
    "date",  # ISO 8601 UTC start time of the run
    "source",  # the paper table's citation, or the run file relative to the results dir
    "provenance",  # "verbatim" / "secondary" for paper numbers, "run" for ours
    "settings",  # JSON: model_args, adapter settings, limit, the task's generation settings, illada_eval block
]


# Metrics for tasks outside the papers (e.g. our sanity tasks): only fractions in [0, 1],
# so that scaling to 0-100 is right; perplexities and the like are left out.
OTHER_TASK_METRICS = ("acc", "acc_norm", "exact_match", "pass@1", "pass_at_1", "math_verify", "f1", "em")

_BY_TASK = {task: bench for bench in BENCHMARKS for task in bench.lm_eval_tasks}
_TASK_PREFIX = "illada_"  # our own task names: illada_<task> (base), illada_instruct_<task>


class MalformedResultError(ValueError):
    """A run file that is not a readable lm-eval result file."""


# ---------------------------------------------------------------- task names and metrics


def _split_task_name(task: str) -> tuple[str, str | None]:
    """``illada_instruct_gsm8k`` / ``illada_gsm8k_instruct`` -> (``gsm8k``, ``instruct``).

    Lower-cases, reads ``-`` as ``_`` and drops our ``illada_`` prefix; a preset is read from a
    ``_base`` / ``_instruct`` suffix, or, on our own tasks, from the word after ``illada_``.
    """
    name = task.strip().lower().replace("-", "_")
    ours = name.startswith(_TASK_PREFIX)
    name = name.removeprefix(_TASK_PREFIX)
    for preset in PRESETS:
        if ours and name.startswith(f"{preset}_"):
            return name[len(preset) + 1 :], preset
        if name.endswith(f"_{preset}"):
            return name[: -len(preset) - 1], preset
    return name, None


def normalize_task_name(task: str) -> str:
    """``illada_arc_challenge_base`` -> ``arc_challenge``; ``MMLU-Redux`` -> ``mmlu_redux``."""
    return _split_task_name(task)[0]


def task_preset(task: str) -> str | None:
    """``base`` / ``instruct`` when the task's name says which preset it belongs to."""
    return _split_task_name(task)[1]


def benchmark_for_task(task: str) -> Benchmark | None:
    """The paper benchmark an lm-eval task or group measures, or None for other tasks."""
    entry = protocol_of_task(task)[1]
    if entry is not None:
        return BENCHMARK_BY_KEY[entry.benchmark]
    return _BY_TASK.get(normalize_task_name(task))


def primary_metric(task_results: dict[str, Any], benchmark: Benchmark | None) -> str | None:
    """The metric key ("name,filter") that is the task's headline score, or None.

    The first metric of the benchmark's list that the task reports wins; among its filters the
    benchmark's preferred ones come first, then the rest in alphabetical order.
    """
    metrics = benchmark.metrics if benchmark else OTHER_TASK_METRICS
    filters = benchmark.filters if benchmark else ("none",)
    keys = [key for key, value in task_results.items() if "," in key and _number(value) is not None]
    for metric in metrics:
        candidates = [key for key in keys if key.split(",", 1)[0] == metric]
        if candidates:
            rank = {name: i for i, name in enumerate(filters)}
            return min(candidates, key=lambda key: (rank.get(key.split(",", 1)[1], len(rank)), key))
    return None


def headline_metric(task_results: dict[str, Any], ours: TaskProtocol | None,
                    benchmark: Benchmark | None) -> str | None:
    """The metric key of a task's table cell: for our tasks (``ours``, the registry entry) the
    one their protocol shows (an OpenCompass-style ARC-C shows exact_match, not the benchmark's
    usual acc_norm), else :func:`primary_metric`."""
    if ours is not None and ours.metric in task_results:
        return ours.metric
    return primary_metric(task_results, benchmark)


def _number(value: Any) -> float | None:
    """A finite float, or None for "N/A", null, NaN and the like."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


# ---------------------------------------------------------------- published scores


def load_published(path: Path) -> pd.DataFrame:
    """The papers' scores from ``scores.csv`` as rows of the tidy table."""
    if not path.is_file():
        raise FileNotFoundError(
            f"published scores not found at {path}; point --input at the repository's results/ "
            "folder (it holds published/scores.csv)"
        )
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    required = {"table", "model", "model_kind", "benchmark", "score", "shots", "source", "provenance"}
    if missing := sorted(required - set(raw.columns)):
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    scores = pd.to_numeric(raw["score"], errors="coerce")
    if bad := [i + 2 for i in scores.index[scores.isna()]]:  # +2: header line, 1-based
        raise ValueError(f"{path}: score is not a number on line(s) {', '.join(map(str, bad))}")
    rows = pd.DataFrame(
        {
            "origin": "paper",
            "table": raw["table"],
            "model": raw["model"],
            "model_kind": raw["model_kind"],
            "benchmark": raw["benchmark"],
            "score": scores,
            "shots": pd.to_numeric(raw["shots"], errors="coerce"),
            "source": raw["source"],
            "provenance": raw["provenance"],
        }
    )
    cells = [_published_cell(table, model, bench) for table, model, bench in zip(raw["table"], raw["model"], raw["benchmark"])]
    for column, values in zip(("protocol", "dataset", "metric", "n"), zip(*cells) if cells else ((),) * 4):
        rows[column] = list(values)
    rows["full"] = True
    return _tidy(rows)


def _published_cell(table: str, model: str, benchmark: str) -> tuple:
    """(protocol, dataset, metric, n) of a published cell, from the registry; Nones where the
    column is quoted (no protocol) or the protocol has no task for the benchmark."""
    protocol = protocol_of_column(table, model)
    bench = BENCHMARK_BY_NAME.get(benchmark)
    entry = protocol.task_for(bench.key) if protocol and bench else None
    if entry is None:
        return (protocol.name if protocol else None, None, None, None)
    return (protocol.name, entry.dataset, entry.metric, entry.size)


# ---------------------------------------------------------------- lm-eval run files


def read_result_file(path: Path) -> dict[str, Any]:
    """The parsed lm-eval result JSON; :class:`MalformedResultError` says what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise MalformedResultError(f"{path}: cannot be read ({err.strerror or err})") from err
    except UnicodeDecodeError as err:
        raise MalformedResultError(f"{path}: not UTF-8 text ({err.reason})") from err
    except json.JSONDecodeError as err:
        raise MalformedResultError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
        ) from err
    if not isinstance(data, dict):
        raise MalformedResultError(f"{path}: expected a JSON object at the top, found {type(data).__name__}")
    if not isinstance(data.get("results"), dict):
        what = "no 'results' object" if "results" not in data else "a 'results' entry that is not an object"
        raise MalformedResultError(
            f"{path}: has {what}; lm-eval result files (results_*.json) have one, per task"
        )
    return data


def parse_model_args(model_args: Any) -> dict[str, Any]:
    """lm-eval's ``model_args``, given as a dict or as ``"pretrained=x,dtype=bfloat16"``."""
    if isinstance(model_args, dict):
        return dict(model_args)
    if not isinstance(model_args, str):
        return {}
    pairs = (item.split("=", 1) for item in model_args.split(",") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs}


def run_model_name(data: dict[str, Any], path: Path) -> str:
    """The run's model: the last part of ``pretrained`` (hub id or path), else the file name."""
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    args = parse_model_args(config.get("model_args"))
    # lm-eval's own order: the checkpoint argument first, then its own model_name field
    candidates = [args.get(key) for key in ("pretrained", "model", "path")] + [data.get("model_name")]
    name = next((str(c) for c in candidates if isinstance(c, str) and c.strip()), path.stem)
    return name.strip().removeprefix("hf:").rstrip("/").rsplit("/", 1)[-1]


def load_run(path: Path, root: Path, published_tables: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows of the tidy table for one lm-eval result file (one row per reported task).

    ``published_tables`` (lower-cased model name -> paper table) places a run of a published
    model in that model's table when nothing else says which preset it used.
    """
    data = read_result_file(path)
    results: dict[str, Any] = data["results"]
    model = run_model_name(data, path)
    config, block = _dict(data.get("config")), _dict(data.get("illada_eval"))
    children = _dict(data.get("group_subtasks"))
    preset = _run_preset(model, block, published_tables or {})
    n_samples = _dict(data.get("n-samples"))
    rows = []
    for task in _reported_tasks(path, results, children):
        entry, bench = results[task], benchmark_for_task(task)
        protocol, ours = _run_protocol(task, config)
        metric = headline_metric(entry, ours, bench)
        name, filter_name = metric.split(",", 1)
        n = _doc_count(task, n_samples, children)
        rows.append(
            {
                "origin": "run",
                "table": PROTOCOLS[protocol].table if protocol else task_preset(task) or preset,
                "model": model,
                "benchmark": bench.name if bench else None,
                "task": task,
                "metric": metric,
                "protocol": protocol,
                "dataset": ours.dataset if ours else None,
                "full": _scored_everything(ours, n, config),
                "score": 100.0 * entry[metric],
                "stderr": _scaled(entry.get(f"{name}_stderr,{filter_name}")),
                "n": n,
                "shots": _number(_dict(data.get("n-shot")).get(task)),
                "date": _iso_date(data.get("date")),
                "source": path.relative_to(root).as_posix(),
                "provenance": "run",
                "settings": _settings(config, block, _dict(_dict(data.get("configs")).get(task))),
            }
        )
    if not rows:
        tasks = ", ".join(sorted(results)) or "none"
        logger.warning("%s: no task in the file has a score to report (tasks: %s)", path, tasks)
    return _tidy(pd.DataFrame(rows))


def _reported_tasks(path: Path, results: dict[str, Any], children: dict[str, Any]) -> list[str]:
    """Tasks with a headline score that no group above them in the file already reports.

    So the BBH group is kept but not its 27 subtasks, MMLU but not mmlu_stem or mmlu_anatomy,
    while the tasks of a score-less group (our preset groups) are kept.
    """
    parents: dict[str, list[str]] = {}
    for group, subtasks in children.items():
        for child in subtasks if isinstance(subtasks, list) else []:
            parents.setdefault(child, []).append(group)

    def scored(task: str) -> bool:
        entry = results.get(task)
        return (isinstance(entry, dict)
                and headline_metric(entry, protocol_of_task(task)[1], benchmark_for_task(task)) is not None)

    def scored_above(task: str, seen: frozenset[str] = frozenset()) -> bool:
        above = [parent for parent in parents.get(task, []) if parent not in seen]
        return any(scored(parent) or scored_above(parent, seen | {task}) for parent in above)

    kept = []
    for task in sorted(results):
        bench = benchmark_for_task(task)
        if not isinstance(results[task], dict):
            logger.warning("%s: results entry for task %r is not an object; skipped", path, task)
        elif not scored(task):
            if bench is not None:  # a paper benchmark without its metric: say so, it leaves a gap
                wanted = ", ".join(bench.metrics)
                logger.warning("%s: task %r (%s) has none of the metrics %s; skipped", path, task, bench.name, wanted)
        elif not scored_above(task):
            kept.append(task)
    return kept


def _run_protocol(task: str, config: dict[str, Any]) -> tuple[str | None, TaskProtocol | None]:
    """The protocol a task of a run was scored under and the task's registry entry.

    Our task files belong to one protocol each; a run of lm-eval's ``hf`` backend on them is the
    autoregressive protocol that runs them (qwen2.5-base on illada-base's tasks). A task the
    registry does not know has no protocol: its scores are shown, never compared.
    """
    protocol, entry = protocol_of_task(task)
    if protocol is None:
        return None, entry
    if config.get("model") == "hf":
        return next((p.name for p in PROTOCOLS.values() if p.runs_tasks_of == protocol.name), None), entry
    return protocol.name, entry


def _scored_everything(entry: TaskProtocol | None, n: int | None, config: dict[str, Any]) -> bool:
    """Whether a task scored its whole dataset: no --limit, and (for our tasks) every document."""
    if config.get("limit") is not None:
        return False
    if entry is None or n is None:
        return n is not None
    return entry.size is None or n >= entry.size


def _run_preset(model: str, block: dict[str, Any], published_tables: dict[str, str]) -> str:
    """The run's table: our ``illada_eval.preset``, else the published model's table, else a guess
    from the model's name (task-name suffixes override this per task)."""
    if block.get("protocol") in PROTOCOLS:
        return PROTOCOLS[block["protocol"]].table
    if block.get("preset") in PRESETS:
        return block["preset"]
    return published_tables.get(model.lower()) or ("instruct" if "instruct" in model.lower() else "base")


def load_runs(root: Path, published_tables: dict[str, str] | None = None) -> pd.DataFrame:
    """All ``runs/**/*.json`` under ``root``; a malformed file is named in a warning and skipped."""
    runs_dir = root / RUNS_DIR
    frames = []
    for path in sorted(runs_dir.rglob("*.json")) if runs_dir.is_dir() else []:
        try:
            frames.append(load_run(path, root, published_tables))
        except MalformedResultError as err:
            logger.warning("skipped %s", err)
    return _tidy(pd.concat(frames, ignore_index=True)) if frames else _tidy(pd.DataFrame())


def load_scores(root: Path) -> pd.DataFrame:
    """The tidy table of everything under a results directory: paper rows first, then runs."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"results directory {root} not found; run from the repository root or pass --input DIR"
        )
    published = load_published(root / PUBLISHED_CSV)
    in_leaderboard = published[published["table"].isin(PRESETS)]
    tables = dict(zip(in_leaderboard["model"].str.lower(), in_leaderboard["table"]))
    runs = load_runs(root, tables)
    return _tidy(pd.concat([published, runs], ignore_index=True)) if len(runs) else published


def _tidy(rows: pd.DataFrame) -> pd.DataFrame:
    """Every column of :data:`COLUMNS`, in order, with stable dtypes."""
    rows = rows.reindex(columns=COLUMNS)
    for column in ("score", "stderr"):
        rows[column] = rows[column].astype("float64")
    for column in ("n", "shots"):
        rows[column] = rows[column].astype("Int64")
    rows["full"] = rows["full"].astype("boolean")
    text = [c for c in COLUMNS if c not in ("score", "stderr", "n", "shots", "full")]
    rows[text] = rows[text].astype("object").where(rows[text].notna(), None)
    return rows.reset_index(drop=True)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _scaled(value: Any) -> float | None:
    number = _number(value)
    return None if number is None else 100.0 * number


def _doc_count(task: str, n_samples: dict[str, Any], children: dict[str, Any]) -> int | None:
    """Documents scored for a task; for a group, the sum over its leaf tasks."""
    counts = _dict(n_samples.get(task))
    if (count := _number(counts.get("effective", counts.get("original")))) is not None:
        return int(count)
    subtasks = children.get(task)
    if not isinstance(subtasks, list) or not subtasks:
        return None
    parts = [_doc_count(sub, n_samples, children) for sub in subtasks if sub != task]
    return None if any(part is None for part in parts) else sum(parts)  # type: ignore[misc]


def _iso_date(value: Any) -> str | None:
    """lm-eval writes the start time as a Unix timestamp; keep a string date as given."""
    if (stamp := _number(value)) is not None:
        return datetime.fromtimestamp(stamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value if isinstance(value, str) and value else None


def _settings(config: dict[str, Any], block: dict[str, Any], task_config: dict[str, Any]) -> str:
    """What the score depends on, as canonical JSON (sorted keys) for the table's settings column."""
    settings = {
        "model_args": parse_model_args(config.get("model_args")),
        "adapter": config.get("illada_adapter"),  # every setting our lm-eval adapter ran with
        "limit": config.get("limit"),
        "generation_kwargs": task_config.get("generation_kwargs"),
        "task_metadata": task_config.get("metadata"),
        "illada_eval": block or None,
    }
    kept = {key: value for key, value in settings.items() if value not in (None, {}, "")}
    return json.dumps(kept, sort_keys=True, ensure_ascii=False, default=str)


# ---------------------------------------------------------------- the leaderboard layout


def round_score(value: float) -> Decimal:
    """One decimal, exact ties rounded down: this reproduces every average the paper prints.

    The paper shows iLLaDA-8B-Base's average of 511.6 / 8 = 63.95 as 63.9 and Dream-7B-Instruct's
    60.157 as 60.2, so its rule is round-half-down. Rounding to 9 places first drops binary
    noise (63.449999999999996 is the tie 63.45).
    """
    return Decimal(repr(round(float(value), 9))).quantize(Decimal("0.1"), rounding=ROUND_HALF_DOWN)


def format_score(value: float, signed: bool = False) -> str:
    """A score (``63.9``) or, with ``signed``, a difference (``+1.2``, ``-0.4``, ``0.0``)."""
    rounded = round_score(value)
    if not signed:
        return f"{rounded}"
    return "0.0" if rounded == 0 else f"{rounded:+}"


@dataclass(frozen=True)
class RunColumn:
    """One run's scores under one protocol in a paper table, and the published column it is
    compared with: the same model's when published, else the one of the same protocol."""

    model: str
    protocol: str | None
    scores: dict[str, float]  # benchmark -> score
    stderrs: dict[str, float]  # benchmark -> standard error, where lm-eval gave one
    reference: str | None  # the published column it is compared with
    # benchmark -> None where run and published cell are comparable, else why they are not
    comparisons: dict[str, str | None]
    rows: pd.DataFrame = field(repr=False)  # the tidy rows behind the scores

    @property
    def partial(self) -> bool:
        return not bool(self.rows["full"].all())

    def deltas(self, published: dict[str, float]) -> dict[str, float]:
        """Run minus published, on the comparable cells only."""
        return {bench: score - published[bench] for bench, score in self.scores.items()
                if self.comparisons.get(bench) is None and not pd.isna(published.get(bench))}


def comparison(run: pd.Series, paper: pd.Series | None) -> str | None:
    """None when a run's cell may be compared with a published one; otherwise the reason.

    Comparable means: the same protocol, everything that protocol leaves open known, the same
    dataset subset, the same metric, and the whole dataset scored.
    """
    if paper is None or pd.isna(paper["score"]):
        return "no published score"
    if paper["protocol"] is None:
        return f"{paper['model']}'s number is quoted from another report, under no protocol this tool runs"
    if run["protocol"] is None:
        return "the run records no protocol of this tool (a task outside the registry)"
    if run["protocol"] != paper["protocol"]:
        return f"run under {run['protocol']}, published under {paper['protocol']}"
    bench = BENCHMARK_BY_NAME[run["benchmark"]].key
    if unstated := PROTOCOLS[paper["protocol"]].unstated.get(bench):
        return f"the {paper['protocol']} sources do not state {unstated}"
    if run["dataset"] != paper["dataset"]:
        return f"run on {run['dataset']}, published on {paper['dataset']}"
    if run["metric"] != paper["metric"]:
        return f"run shows {run['metric']}, published {paper['metric']}"
    if not run["full"]:
        return f"partial run: {run['n']} documents" + (f" of {paper['n']}" if not pd.isna(paper["n"]) else "")
    return None


@dataclass(frozen=True)
class Leaderboard:
    """A paper table laid out as printed: benchmarks as rows, models as columns."""

    table: str
    benchmarks: list[str]
    published: pd.DataFrame  # index: benchmarks, columns: published models (paper order)
    runs: list[RunColumn]
    sources: dict[str, str]  # published model -> "citation (provenance)"

    def average(self, scores: dict[str, float] | pd.Series) -> float | None:
        """Mean over all the table's benchmarks; None when any is missing (not comparable)."""
        values = [scores.get(bench) for bench in self.benchmarks]
        if any(value is None or pd.isna(value) for value in values):
            return None
        return math.fsum(values) / len(values)  # type: ignore[arg-type]


def latest_run_rows(scores: pd.DataFrame, include_partial: bool = False, warn: bool = False) -> pd.DataFrame:
    """One run row per (table, model, protocol, benchmark or task): the newest run wins.

    Rows of partial runs (``--limit``) are left out first, unless ``include_partial``: a trial
    run never hides a full one.

    Runs of one model may be split over several files (one per task) and merge into one
    column; when two files score the same cell, the later date (then file name) is kept and,
    with ``warn`` (once per command, not once per table), a warning names both.
    """
    runs = scores[scores["origin"] == "run"].copy()
    if not include_partial:
        runs = runs[runs["full"].fillna(False).astype(bool)]
    runs["cell"] = runs["benchmark"].fillna(runs["task"])
    runs["under"] = runs["protocol"].fillna("")
    runs = runs.sort_values(["table", "model", "under", "cell", "date", "source", "task"], na_position="first",
                            kind="stable")
    duplicated = runs.duplicated(["table", "model", "under", "cell"], keep="last")
    for _, old in runs[duplicated].iterrows() if warn else ():
        logger.warning(
            "%s scored %s / %s again; using the newer result, not %s (%s)",
            old["model"], old["table"], old["cell"], old["source"], old["task"],
        )
    return runs[~duplicated].drop(columns=["cell", "under"]).reset_index(drop=True)


def leaderboard(scores: pd.DataFrame, table: str, include_partial: bool = False) -> Leaderboard:
    """The paper's ``table`` with every run of that table as an extra column per (model, protocol).

    Runs that did not score the whole dataset (``--limit``) are left out unless
    ``include_partial``; even then they are never compared.
    """
    paper = scores[(scores["origin"] == "paper") & (scores["table"] == table)]
    if paper.empty:
        raise ValueError(f"the published scores have no {table!r} table")
    benchmarks = list(dict.fromkeys(paper["benchmark"]))
    models = list(dict.fromkeys(paper["model"]))
    published = paper.pivot(index="benchmark", columns="model", values="score")
    published = published.reindex(index=benchmarks, columns=models)
    cells = {(row["model"], row["benchmark"]): row for _, row in paper.iterrows()}
    by_lower = {model.lower(): model for model in models}
    by_protocol = {row["protocol"]: row["model"] for _, row in paper.iterrows() if row["protocol"] is not None}
    runs = latest_run_rows(scores, include_partial)
    runs = runs[(runs["table"] == table) & runs["benchmark"].isin(benchmarks)]
    columns = []
    for (model, protocol), rows in runs.groupby(["model", runs["protocol"].fillna("")], sort=True):
        protocol = protocol or None
        reference = by_lower.get(model.lower()) or by_protocol.get(protocol)
        columns.append(RunColumn(
            model=model,
            protocol=protocol,
            scores=dict(zip(rows["benchmark"], rows["score"])),
            stderrs={bench: err for bench, err in zip(rows["benchmark"], rows["stderr"]) if not pd.isna(err)},
            reference=reference,
            comparisons={row["benchmark"]: comparison(row, cells.get((reference, row["benchmark"])))
                         for _, row in rows.iterrows()} if reference else {},
            rows=rows.reset_index(drop=True),
        ))
    return Leaderboard(
        table=table,
        benchmarks=benchmarks,
        published=published,
        runs=columns,
        sources={model: f"{source} ({provenance})" for model, source, provenance
                 in paper[["model", "source", "provenance"]].drop_duplicates("model").itertuples(index=False)},
    )


def other_run_rows(scores: pd.DataFrame, include_partial: bool = False) -> pd.DataFrame:
    """Run rows that no paper table has a place for (sanity tasks, a base run of MMLU-Pro, ...)."""
    runs = latest_run_rows(scores, include_partial)
    paper = scores[(scores["origin"] == "paper") & scores["table"].isin(PRESETS)]
    placed = set(zip(paper["table"], paper["benchmark"]))
    keep = [(table, bench) not in placed for table, bench in zip(runs["table"], runs["benchmark"])]
    return runs[keep].reset_index(drop=True)


# ---------------------------------------------------------------- writing generated files


def write_atomic(target: Path, content: bytes) -> None:
    """Write ``target`` through a temporary file beside it, so a reader never sees half a file
    and a failed write leaves the old one (and no temporary file) behind."""
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_files(out_dir: Path, files: dict[str, bytes]) -> list[Path]:
    """Write generated files into ``out_dir`` atomically (a reader never sees half a file)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name, content in sorted(files.items()):
            write_atomic(out_dir / name, content)
            written.append(out_dir / name)
        return written
    except OSError as err:
        raise OSError(
            f"cannot write to output directory {out_dir}: {err.strerror or err}; "
            "pass --output with a folder you can write to"
        ) from err
