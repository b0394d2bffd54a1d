"""``illada-eval ls``: the presets with their tasks, the tasks outside them, the aliases.

It reads the task names straight from our YAMLs' top-level ``task:`` / ``group:`` lines instead
of building lm-eval's task index, so it answers in a fraction of a second.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from illada_eval import presets
from illada_eval.registry import EXTRA_TASKS, PROTOCOL_ALIASES, PROTOCOLS
from illada_eval.tasks import TASKS_DIR

_NAME_LINE = re.compile(r"^(?:task|group):[ \t]*['\"]?([\w.-]+)", re.MULTILINE)


def project_task_names() -> set[str]:
    """Every task and group name our YAMLs define."""
    return {name for path in TASKS_DIR.rglob("*.yaml") for name in _NAME_LINE.findall(path.read_text(encoding="utf-8"))}


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(prog="illada-eval ls", description=__doc__.splitlines()[0]).parse_args(argv)
    aliases = {alias: name for alias, name in PROTOCOL_ALIASES.items()}
    for protocol in PROTOCOLS.values():
        also = [alias for alias, name in aliases.items() if name == protocol.name]
        print(f"preset {protocol.name}" + (f" (= {', '.join(also)})" if also else "") + f": {protocol.title}")
        for benchmark, entry in presets.protocol_tasks(protocol.name).items():
            print(f"  {benchmark:14s} {entry.task}")
    print("other tasks:")
    for entry in EXTRA_TASKS:
        print(f"  {entry.benchmark:14s} {entry.task}")
    shown = presets.our_tasks()
    for task in sorted(project_task_names() - shown):
        print(f"  {'':14s} {task}")
    by_target: dict[str, list[str]] = {}
    for alias, benchmark in presets.ALIASES.items():
        if alias != benchmark:
            by_target.setdefault(benchmark, []).append(alias)
    print("aliases:")
    for benchmark, names in sorted(by_target.items()):
        print(f"  {benchmark:14s} {', '.join(sorted(names))}")
    print(f"  {presets.OFFLINE_SELECTOR:14s} the preset's tasks whose data the offline mirror holds")
    print("`illada-eval protocol` shows every setting of each preset. Any task name of lm-eval "
          "(`lm-eval ls tasks`) works as well.")
    return 0
