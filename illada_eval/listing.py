"""``illada-eval ls``: the presets with their tasks, the tasks outside them, the aliases.

It reads the task names straight from our YAMLs' top-level ``task:`` / ``group:`` lines instead
of building lm-eval's task index, so it answers in a fraction of a second.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from illada_eval import presets
from illada_eval.tasks import TASKS_DIR

_NAME_LINE = re.compile(r"^(?:task|group):[ \t]*['\"]?([\w.-]+)", re.MULTILINE)


def project_task_names() -> set[str]:
    """Every task and group name our YAMLs define."""
    return {name for path in TASKS_DIR.rglob("*.yaml") for name in _NAME_LINE.findall(path.read_text(encoding="utf-8"))}


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(prog="illada-eval ls", description=__doc__.splitlines()[0]).parse_args(argv)
    for preset, tasks in presets.PRESET_TASKS.items():
        print(f"preset {preset}:")
        for benchmark, task in tasks.items():
            print(f"  {benchmark:14s} {task}")
    print("other tasks:")
    for benchmark, task in presets.EXTRA_TASKS.items():
        print(f"  {benchmark:14s} {task}")
    shown = {task for tasks in presets.PRESET_TASKS.values() for task in tasks.values()} | set(presets.EXTRA_TASKS.values())
    for task in sorted(project_task_names() - shown):
        if task.startswith("illada_"):
            print(f"  {'':14s} {task}")
    by_target: dict[str, list[str]] = {}
    for alias, benchmark in presets.ALIASES.items():
        if alias != benchmark:
            by_target.setdefault(benchmark, []).append(alias)
    print("aliases:")
    for benchmark, aliases in sorted(by_target.items()):
        print(f"  {benchmark:14s} {', '.join(sorted(aliases))}")
    print(f"  {presets.OFFLINE_SELECTOR:14s} the preset's tasks whose data the offline mirror holds")
    print("Any task name of lm-eval (`lm-eval ls tasks`) works as well.")
    return 0
