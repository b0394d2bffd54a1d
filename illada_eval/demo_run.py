"""The README's main job: the whole product on the embedded demo model, offline, on a CPU.

Builds the offline data pack, evaluates the demo model on the base preset's offline benchmarks
(a small --limit; the demo is a 315k-parameter model, so these sit at chance) and on the sanity
tasks (far above chance), then regenerates the leaderboard and the delta plots with that run.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from illada_eval import data, evaluate, plot, report

# The demo knows 288 positions: generation budgets shrink to fit (contexts are cut from the left).
DEMO_GEN_KWARGS = "max_gen_toks=32,block_length=32,steps=32"
DEMO_LIMIT = "3"
OUTPUT = "results/runs/illada-demo"


def main(argv: list[str] | None = None) -> int:
    data_dir = str(data.default_data_dir())
    evaluations = [
        ("building the offline data pack", data.main, ["pull"]),
        (
            "evaluating the demo model on the offline benchmarks",
            evaluate.main,
            ["--model", "demo", "--preset", "base", "--tasks", "offline", "--limit", DEMO_LIMIT,
             "--gen-kwargs", DEMO_GEN_KWARGS, "--confirm-run-unsafe-code", "--data-dir", data_dir,
             "--output-path", OUTPUT],
        ),
        (
            "evaluating the demo model on the sanity tasks",
            evaluate.main,
            ["--model", "demo", "--tasks", "illada_sanity_mc,illada_sanity_mc_elbo,illada_sanity_gen",
             "--limit", "100", "--output-path", OUTPUT],
        ),
    ]
    # the demo's runs use --limit: shown (marked partial), never compared with published numbers
    reports = [
        ("regenerating the leaderboard", report.main, ["--include-partial"]),
        ("drawing the score-delta plots", plot.main, ["--include-partial"]),
    ]
    earlier_runs = sorted(Path(OUTPUT).glob("**/results_*.json"))
    status = run_steps(evaluations)
    if status:
        return status  # the earlier results stay
    retire(earlier_runs)
    status = run_steps(reports)
    if not status:
        print("\nDone: results/leaderboard/leaderboard.md and results/plots/ hold the tables and plots.")
    return status


def run_steps(steps: list[tuple[str, Callable[[list[str]], int], list[str]]]) -> int:
    for title, step, args in steps:
        print(f"\n== illada-eval demo: {title} ==", flush=True)
        status = step(args)
        if status:
            print(f"illada-eval demo: stopped at '{title}' (exit status {status})", file=sys.stderr)
            return status
    return 0


def retire(earlier_runs: list[Path]) -> None:
    """Remove the demo's earlier result files once this run has written its own, so the
    leaderboard shows one demo column instead of warning about every superseded score."""
    for path in earlier_runs:
        path.unlink()
    if earlier_runs:
        print(f"illada-eval demo: replaced {len(earlier_runs)} earlier result file(s) in {OUTPUT}")


if __name__ == "__main__":
    raise SystemExit(main())
