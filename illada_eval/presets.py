"""The task names users type, resolved under a protocol of :mod:`illada_eval.registry`.

A preset is a protocol (``illada-base``, ``llada-instruct``, ...; ``base`` and ``instruct`` are
the iLLaDA ones): which tasks, and, in each task's generated file under tasks/, the scoring
method, shots, generation length and block. Users name benchmarks by their short names (``arc``,
``bbh``, ``math``...); :func:`resolve_tasks` turns them into the task names of the chosen preset.
"""
from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable

from illada_eval.registry import (
    BENCHMARKS,
    DEFAULT_PROTOCOL,
    EXTRA_TASKS,
    PROTOCOL_ALIASES,
    PROTOCOLS,
    TaskProtocol,
    get_protocol,
)

PRESETS = (*PROTOCOLS, *PROTOCOL_ALIASES)
DEFAULT_PRESET = DEFAULT_PROTOCOL

# short names users type -> Benchmark.key
ALIASES: dict[str, str] = {
    name: bench.key for bench in BENCHMARKS for name in (bench.key, bench.name.lower(), *bench.aliases)
}

# selector for "every task of the preset whose data the offline mirror holds"
OFFLINE_SELECTOR = "offline"



def protocol_tasks(preset: str) -> dict[str, TaskProtocol]:
    """benchmark key -> task entry of a preset, in the paper's table order (the task files a
    protocol runs: its own, or those of the protocol whose prompts and shots it shares)."""
    protocol = get_protocol(preset)
    source = get_protocol(protocol.runs_tasks_of) if protocol.runs_tasks_of else protocol
    return {entry.benchmark: entry for entry in source.tasks}


def preset_tasks(preset: str = DEFAULT_PRESET) -> list[str]:
    """All task names of a preset, in the paper's table order."""
    return [entry.task for entry in protocol_tasks(preset).values()]


def offline_tasks(preset: str = DEFAULT_PRESET) -> list[str]:
    """The preset's tasks whose data the offline mirror holds (``illada-eval data pull``)."""
    return [entry.task for entry in protocol_tasks(preset).values() if entry.offline]


def our_tasks() -> set[str]:
    """Every task name the registry generates."""
    return {entry.task for protocol in PROTOCOLS.values() for entry in protocol.tasks} | {e.task for e in EXTRA_TASKS}


def resolve_tasks(
    spec: str | Iterable[str] | None,
    preset: str = DEFAULT_PRESET,
    known_tasks: Collection[str] = (),
) -> list[str]:
    """Task names for a user's ``--tasks`` under a preset.

    ``spec`` is a comma-separated string or a list; empty means the whole preset. Each entry is a
    benchmark alias (``arc``, ``bbh``, ``math``...), the selector ``offline``, one of our task
    names, or any other name in ``known_tasks`` (e.g. lm-eval's ``TaskManager.all_tasks``), kept
    as is. Aliases win over lm-eval's tasks of the same name (``mmlu`` is the preset's MMLU).
    Unknown names raise ValueError with the closest names.
    """
    tasks_of_preset = protocol_tasks(preset)
    entries = [e.strip() for e in (spec.split(",") if isinstance(spec, str) else spec or [])]
    entries = [e for e in entries if e]
    if not entries:
        return preset_tasks(preset)
    ours = our_tasks()
    resolved: list[str] = []
    for entry in entries:
        if entry == OFFLINE_SELECTOR:
            names = offline_tasks(preset)
        elif entry in ours:
            names = [entry]
        elif entry.lower() in ALIASES:  # before lm-eval's names: "mmlu", "bbh"... mean the preset's
            names = [_task_for(ALIASES[entry.lower()], entry, preset, tasks_of_preset)]
        elif entry in known_tasks:
            names = [entry]
        else:
            candidates = sorted({*ALIASES, *ours, *known_tasks, OFFLINE_SELECTOR})
            close = difflib.get_close_matches(entry.lower(), candidates, n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"Unknown task {entry!r}.{hint} Preset {preset!r} has: "
                f"{', '.join(tasks_of_preset)} (`illada-eval ls` lists all tasks)."
            )
        resolved += [name for name in names if name not in resolved]
    return resolved


def _task_for(benchmark: str, typed: str, preset: str, tasks_of_preset: dict[str, TaskProtocol]) -> str:
    if benchmark in tasks_of_preset:
        return tasks_of_preset[benchmark].task
    extra = next((entry for entry in EXTRA_TASKS if entry.benchmark == benchmark), None)
    if extra is not None:
        return extra.task
    others = [name for name in PROTOCOLS if benchmark in protocol_tasks(name)]
    raise ValueError(
        f"{typed!r} is not part of the {preset!r} preset (its benchmarks: "
        f"{', '.join(tasks_of_preset)}); it is in: {', '.join(others)}. "
        f"Use --preset {others[0]} to run it with that protocol."
    )
