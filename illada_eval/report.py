"""``illada-eval report``: the leaderboard tables as Markdown, LaTeX, CSV and HTML.

Reads ``results/`` (published scores and lm-eval runs, see :mod:`illada_eval.results`) and
writes into ``results/leaderboard/``:

- ``leaderboard.md``   the base and instruct tables laid out like the paper's (for the README)
- ``leaderboard.tex``  the same as booktabs tables (needs ``\\usepackage{booktabs}``)
- ``leaderboard.html`` one self-contained page (inline CSS, no scripts, no external files)
- ``base.csv``, ``instruct.csv``, ``other.csv``  the tables as CSV, missing cells empty
- ``scores.csv``       the tidy table of every score, with metric, stderr, n and settings

The same inputs give byte-identical files: nothing depends on the clock, the machine or
dictionary order.
"""
from __future__ import annotations

import argparse
import csv
import html
import io
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from illada_eval import results
from illada_eval.results import (
    MISSING,
    PRESETS,
    Leaderboard,
    RunColumn,
    format_score,
    latest_run_rows,
    leaderboard,
    load_scores,
    other_run_rows,
    write_files,
)

TITLES = {"base": "Base models", "instruct": "Instruct models"}
AVERAGE = "Average"


NOT_COMPARABLE = "n/c"


@dataclass(frozen=True)
class Column:
    header: str
    values: list[float | str | None]  # one per table row; a string is shown as it is (n/c)
    delta: bool = False  # a difference, printed with its sign
    errors: list[float | None] | None = None  # standard errors, shown as ± beside the values


@dataclass(frozen=True)
class Table:
    """A rendered-format-neutral table: row labels, columns of numbers, notes under it."""

    key: str
    title: str
    corner: str
    rows: list[str]
    columns: list[Column]
    notes: list[str]
    average_row: bool  # the last row is the Average, set apart by a rule
    file_notes: list[str] = field(default_factory=list)  # where runs came from (not in the LaTeX)


# ---------------------------------------------------------------- building the tables


def paper_table(board: Leaderboard) -> Table:
    """Published columns, then each run (and its difference from the published column it is
    compared with, on the cells where the two are comparable)."""

    def column(header: str, values: dict, average: float | str | None, delta: bool = False,
               errors: dict | None = None) -> Column:
        cells = [values.get(bench) for bench in board.benchmarks] + [average]
        cells = [None if v is None or (not isinstance(v, str) and pd.isna(v)) else v for v in cells]
        return Column(header, [v if isinstance(v, str) or v is None else float(v) for v in cells], delta,
                      None if errors is None else [errors.get(bench) for bench in board.benchmarks] + [None])

    columns = []
    for model in board.published.columns:
        paper = board.published[model].to_dict()
        columns.append(column(model, paper, board.average(paper)))
    reasons = []
    for run in board.runs:
        run_average = board.average(run.scores)
        columns.append(column(run_header(run), run.scores, run_average, errors=run.stderrs))
        if run.reference:
            paper = board.published[run.reference].to_dict()
            deltas = run.deltas(paper)
            cells = {bench: deltas.get(bench, NOT_COMPARABLE) for bench in run.scores}
            paper_average = board.average(paper)
            comparable = run_average is not None and paper_average is not None and len(deltas) == len(board.benchmarks)
            average = (run_average - paper_average) if comparable else (NOT_COMPARABLE if run_average is not None else None)
            columns.append(column(f"Δ vs {run.reference}", cells, average, delta=True))
            reasons += [f"{run_header(run)} vs {run.reference}, {bench}: {why}"
                        for bench, why in run.comparisons.items() if why is not None]
    cited = set(board.sources.values())
    sources = cited.pop() if len(cited) == 1 else "; ".join(f"{m}: {s}" for m, s in board.sources.items())
    notes = [
        f"Scores in percent. Paper columns: {sources}.",
        f"{AVERAGE}: mean over the table's {len(board.benchmarks)} benchmarks, exact ties rounded down "
        f"to one decimal as the paper does; {MISSING} when a column lacks a benchmark.",
        f"{MISSING}: no score.",
    ]
    if board.runs:
        notes.insert(1, "(run, P): our lm-eval run under protocol P (`illada-eval protocol`), ± its standard error; "
                        "Δ vs X = the run minus X's published score, only where protocol, dataset subset and "
                        f"metric are the same and the run scored the whole dataset; {NOT_COMPARABLE}: not comparable.")
    notes += [f"{NOT_COMPARABLE}: {reason}." for reason in reasons]
    notes += [run_note(run.model, run.rows) for run in board.runs]
    rows = board.benchmarks + [AVERAGE]
    return Table(board.table, TITLES.get(board.table, board.table), "Benchmark", rows, columns, notes, True,
                 [files_note(run.model, run.rows) for run in board.runs])


def run_header(run: RunColumn) -> str:
    details = ["run", run.protocol or "no protocol"] + (["partial"] if run.partial else [])
    return f"{run.model} ({', '.join(details)})"


def other_table(others: pd.DataFrame) -> Table:
    """Run scores outside the paper tables (sanity tasks and the like), one column per run."""
    others = others.assign(row=others["benchmark"].fillna(others["task"]),
                           column=others["model"] + " (" + others["table"] + ")")
    rows = sorted(set(others["row"]))
    columns = [
        Column(header, [dict(zip(part["row"], part["score"])).get(row) for row in rows],
               errors=[None if pd.isna(err) else err for err in
                       (dict(zip(part["row"], part["stderr"])).get(row) for row in rows)])
        for header, part in others.groupby("column", sort=True)
    ]
    notes = ["Scores in percent from our runs on tasks outside the paper tables, ± their standard error."]
    notes += [run_note(model, part) for model, part in others.groupby("model", sort=True)]
    return Table("other", "Other tasks (our runs)", "Task", rows, columns, notes, False,
                 [files_note(model, part) for model, part in others.groupby("model", sort=True)])


def run_note(model: str, rows: pd.DataFrame) -> str:
    """What a run column holds: dates, limits, and task -> metric, dataset and n per benchmark."""
    parts = []
    for source, part in rows.groupby("source", sort=True):
        date = next((d for d in part["date"] if d), None)
        limit = next((json.loads(s).get("limit") for s in part["settings"] if s), None)
        head = ", ".join(filter(None, [date and date.replace("T", " "), limit and f"limit {limit}"]))
        tasks = "; ".join(
            f"{row.benchmark or row.task} ← {row.task} [{row.metric}, {row.dataset or 'dataset not recorded'}, "
            f"n={'?' if pd.isna(row.n) else row.n}]"
            for row in part.sort_values(["task"]).itertuples()
        )
        parts.append(f"{head}: {tasks}" if head else tasks)
    return f"{model}: " + " | ".join(parts)


def files_note(model: str, rows: pd.DataFrame) -> str:
    return f"{model}: from " + ", ".join(sorted(set(rows["source"])))


def build_tables(scores: pd.DataFrame, include_partial: bool = False) -> list[Table]:
    tables = [paper_table(leaderboard(scores, preset, include_partial)) for preset in PRESETS]
    others = other_run_rows(scores, include_partial)
    return tables + ([other_table(others)] if len(others) else [])


# ---------------------------------------------------------------- formatting cells


def cell(value: float | str | None, delta: bool, error: float | None = None) -> str | None:
    """One decimal (see :func:`round_score`), a sign on differences, ± the standard error when
    given; None when missing."""
    if value is None or isinstance(value, str):
        return value
    text = format_score(value, signed=delta)
    return text if error is None else f"{text} ± {format_score(error)}"


def cells(table: Table, missing: str, errors: bool = True) -> list[list[str]]:
    def error(col: Column, i: int) -> float | None:
        return col.errors[i] if errors and col.errors else None

    return [
        [row] + [cell(col.values[i], col.delta, error(col, i)) or missing for col in table.columns]
        for i, row in enumerate(table.rows)
    ]


# ---------------------------------------------------------------- the four formats


def to_markdown(tables: list[Table]) -> str:
    out = ["# Leaderboard", "", "Generated by `illada-eval report` from `results/`; do not edit by hand.", ""]
    for table in tables:
        out += [f"## {table.title}", ""]
        out.append("| " + " | ".join([table.corner] + [c.header for c in table.columns]) + " |")
        out.append("|" + "|".join([":---"] + ["---:"] * len(table.columns)) + "|")
        for i, row in enumerate(cells(table, MISSING)):
            if table.average_row and i == len(table.rows) - 1:
                row = [f"**{text}**" for text in row]
            out.append("| " + " | ".join(text.replace("|", "\\|") for text in row) + " |")
        out += [""] + [f"- {note}" for note in table.notes + table.file_notes] + [""]
    return "\n".join(out)


def latex_escape(text: str) -> str:
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
               "Δ": r"$\Delta$", "−": "--", "–": "--", "←": r"$\leftarrow$"}
    return "".join(special.get(char, char) for char in text)


def to_latex(tables: list[Table]) -> str:
    out = ["% Generated by `illada-eval report` from results/; do not edit by hand.",
           "% Needs \\usepackage{booktabs}.", ""]
    for table in tables:
        out += [
            "\\begin{table}[t]",
            "\\centering",
            f"\\caption{{{latex_escape(table.title)}}}",
            f"\\label{{tab:leaderboard-{table.key}}}",
            "\\small",
            "\\resizebox{\\linewidth}{!}{%",
            "\\begin{tabular}{l" + "r" * len(table.columns) + "}",
            "\\toprule",
            " & ".join(latex_escape(h) for h in [table.corner] + [c.header for c in table.columns]) + " \\\\",
            "\\midrule",
        ]
        for i, row in enumerate(cells(table, MISSING)):
            if table.average_row and i == len(table.rows) - 1:
                out.append("\\midrule")
            out.append(" & ".join(latex_escape(text) for text in row) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}}", "", "\\smallskip", "{\\footnotesize"]
        out += [latex_escape(note) + "\\par" for note in table.notes]
        out += ["}", "\\end{table}", ""]
    return "\n".join(out)


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.3em 0.8em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-top: 2px solid #222; border-bottom: 1px solid #222; }
tbody tr:last-child td { border-bottom: 2px solid #222; }
tr.average td { border-top: 1px solid #222; font-weight: bold; }
td.up { color: #1a7f37; } td.down { color: #b42318; } td.missing { color: #999; }
ul.notes { font-size: 0.85em; color: #555; }
""".strip()


DELTA_CLASSES = {"+": "up", "-": "down"}


def to_html(tables: list[Table]) -> str:
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           "<title>illada-eval leaderboard</title>", f"<style>\n{CSS}\n</style>", "</head>", "<body>",
           "<h1>Leaderboard</h1>",
           "<p>Generated by <code>illada-eval report</code> from <code>results/</code>.</p>"]
    for table in tables:
        out += [f"<h2>{esc(table.title)}</h2>", "<table>", "<thead><tr>"]
        out += [f"<th>{esc(h)}</th>" for h in [table.corner] + [c.header for c in table.columns]]
        out += ["</tr></thead>", "<tbody>"]
        for i, label in enumerate(table.rows):
            average = table.average_row and i == len(table.rows) - 1
            out.append('<tr class="average">' if average else "<tr>")
            out.append(f"<td>{esc(label)}</td>")
            for col in table.columns:
                text = cell(col.values[i], col.delta)
                css = "missing" if text is None else DELTA_CLASSES.get(text[0], "") if col.delta else ""
                attr = f' class="{css}"' if css else ""
                out.append(f"<td{attr}>{esc(text or MISSING)}</td>")
            out.append("</tr>")
        out += ["</tbody>", "</table>", '<ul class="notes">']
        out += [f"<li>{esc(note)}</li>" for note in table.notes + table.file_notes]
        out.append("</ul>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def to_csv(table: Table) -> str:
    """The table as displayed, but with missing cells left empty (they read back as NaN, not 0)."""
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow([table.corner] + [c.header for c in table.columns])
    writer.writerows(cells(table, "", errors=False))
    return stream.getvalue()


def scores_csv(scores: pd.DataFrame) -> str:
    return scores.to_csv(index=False, lineterminator="\n", float_format="%.10g")


def render(scores: pd.DataFrame, include_partial: bool = False) -> dict[str, bytes]:
    """Every leaderboard file, by name."""
    tables = build_tables(scores, include_partial)
    by_key = {table.key: table for table in tables}
    empty_other = Table("other", "", "Task", [], [], [], False)
    files = {
        "leaderboard.md": to_markdown(tables),
        "leaderboard.tex": to_latex(tables),
        "leaderboard.html": to_html(tables),
        "scores.csv": scores_csv(scores),
        "other.csv": to_csv(by_key.get("other", empty_other)),
    }
    files.update({f"{preset}.csv": to_csv(by_key[preset]) for preset in PRESETS})
    return {name: text.encode("utf-8") for name, text in files.items()}


# ---------------------------------------------------------------- the command


def build_parser(prog: str, what: str, default_output: str) -> argparse.ArgumentParser:
    """The --input/--output parser that ``report`` and ``plot`` share."""
    parser = argparse.ArgumentParser(prog=prog, description=what)
    parser.add_argument("--input", "-i", type=Path, default=Path("results"),
                        help="results directory with published/scores.csv and runs/ (default: results)")
    parser.add_argument("--output", "-o", type=Path, default=None,
                        help=f"where to write (default: INPUT/{default_output})")
    parser.add_argument("--include-partial", action="store_true",
                        help="also show runs that did not score the whole dataset (--limit); they are never "
                        "compared with published numbers")
    return parser


@contextmanager
def warnings_to_stderr(prog: str) -> Iterator[None]:
    """Show the loader's warnings (skipped files, superseded runs) to the user, whatever logging
    set-up the importing libraries left behind."""
    log = logging.getLogger(results.__name__)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{prog}: warning: %(message)s"))
    saved = log.propagate, log.level
    log.addHandler(handler)
    log.propagate, log.level = False, logging.WARNING
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.propagate, log.level = saved


def run_command(prog: str, argv: list[str] | None, what: str, default_output: str, make_files) -> int:
    """Parse the flags, load the scores, write ``make_files(scores, args)``; errors -> message, exit 1."""
    args = build_parser(prog, what, default_output).parse_args(argv)
    output = args.output if args.output is not None else args.input / default_output
    try:
        with warnings_to_stderr(prog):
            scores = load_scores(args.input)
            latest_run_rows(scores, args.include_partial, warn=True)  # names superseded files, once
            written = write_files(output, make_files(scores, args))
    except (OSError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    runs = scores.loc[scores["origin"] == "run", "source"].nunique()
    print(f"{prog}: {len(written)} files from {runs} run file(s) -> {output}")
    for path in written:
        print(f"  {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command("illada-eval report", argv, "Regenerate the leaderboard tables from results/.",
                       "leaderboard", lambda scores, args: render(scores, args.include_partial))
