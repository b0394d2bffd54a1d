"""Start-up: how long the command takes to answer, each in a fresh process, against its target.

- ``--help``, ``run --help``, ``ls``, ``data --help``: target 2 s;
- a bad flag value (``--limit 0``) and an unknown task name: reported before any model or dataset
  loads (no target in seconds: the second reads lm-eval's cached task index, to find close names);
- a demo run (``--model demo --tasks illada_sanity_mc --limit 2``): its first line, target 10 s,
  and the whole run.
Each figure is the fastest of ``--repeats`` runs (the CPU is shared; the fastest is the least
disturbed); the load average is recorded with it. Writes results/benchmarks/startup.json.

    OMP_NUM_THREADS=1 python benchmarks/startup.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _common import machine_line, write_results

# name -> (arguments of ``illada-eval``, target seconds or None, the status it must exit with)
COMMANDS = {
    "--help": (["--help"], 2.0, 0),
    "run --help": (["run", "--help"], 2.0, 0),
    "ls": (["ls"], 2.0, 0),
    "data --help": (["data", "--help"], 2.0, 0),
    "bad flag value (--limit 0)": (["--model", "demo", "--tasks", "illada_sanity_mc", "--limit", "0"], 2.0, 2),
    "unknown task": (["--model", "demo", "--tasks", "illada_sanity_mcq"], None, 1),
}
DEMO_RUN = ["--model", "demo", "--tasks", "illada_sanity_mc", "--limit", "2", "--bootstrap-iters", "0"]
DEMO_FIRST_LINE_TARGET = 10.0


def run_once(args: list[str], expected: int) -> tuple[float, float]:
    """(seconds to the first line of output, seconds to exit) of ``illada-eval args``."""
    command = [sys.executable, "-m", "illada_eval", *args]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    first = process.stdout.readline()
    first_s = time.perf_counter() - start
    rest = process.stdout.read()
    status = process.wait()
    if status != expected:
        raise SystemExit(f"illada-eval {' '.join(args)} exited {status}, not {expected}:\n{first}{rest[-2000:]}")
    return first_s, time.perf_counter() - start


def fastest(args: list[str], expected: int, repeats: int) -> tuple[float, float]:
    runs = [run_once(args, expected) for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = {}
    print(f"{'command':34s} {'seconds':>8s} {'target':>7s} {'÷ target':>9s}")
    for name, (argv, target, expected) in COMMANDS.items():
        _, total = fastest(argv, expected, args.repeats)
        rows[name] = {"seconds": round(total, 2), "target_s": target}
        ratio = f"{total / target:9.2f}" if target else f"{'':9s}"
        print(f"{name:34s} {total:8.2f} {target or '':>7} {ratio}")
    with tempfile.TemporaryDirectory() as output:
        first, total = fastest([*DEMO_RUN, "-o", output], 0, args.repeats)
    rows["demo run: first line"] = {"seconds": round(first, 2), "target_s": DEMO_FIRST_LINE_TARGET}
    rows["demo run: whole"] = {"seconds": round(total, 2), "target_s": None}
    print(f"{'demo run: first line':34s} {first:8.2f} {DEMO_FIRST_LINE_TARGET:>7} {first / DEMO_FIRST_LINE_TARGET:9.2f}")
    print(f"{'demo run: whole':34s} {total:8.2f}")
    load_after = os.getloadavg()[0]
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after")
    write_results("results/benchmarks/startup.json", machine_line(),
                  {"repeats": args.repeats, "demo_run": DEMO_RUN, "load_average_1min": [load_before, load_after]},
                  commands=rows)


if __name__ == "__main__":
    main()
