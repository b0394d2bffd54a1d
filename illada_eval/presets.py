"""The paper's evaluation presets and the task names users type.

A preset is the paper's protocol for one kind of model (``base`` or ``instruct``): which tasks,
and, inside each task's YAML under tasks/, the scoring method, shots, generation length and block.
Users name benchmarks by their short names (``arc``, ``bbh``, ``math``...); :func:`resolve_tasks`
turns them into the task names of the chosen preset.
"""
from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable

from illada_eval.data import BENCHMARKS

# benchmark -> task (or group) name, per preset; the order is the paper's table order
PRESET_TASKS: dict[str, dict[str, str]] = {
    "base": {
        "mmlu": "illada_mmlu",
        "bbh": "illada_bbh",
        "arc_challenge": "illada_arc_challenge",
        "hellaswag": "illada_hellaswag",
        "gsm8k": "illada_gsm8k",
        "math": "illada_math",
        "humaneval": "illada_humaneval",
        "mbpp": "illada_mbpp",
    },
    "instruct": {
        "mmlu": "illada_instruct_mmlu",
        "mmlu_redux": "illada_instruct_mmlu_redux",
        "mmlu_pro": "illada_instruct_mmlu_pro",
        "gsm8k": "illada_instruct_gsm8k",
        "math": "illada_instruct_math",
        "humaneval": "illada_instruct_humaneval",
        "mbpp": "illada_instruct_mbpp",
    },
}
PRESETS = tuple(PRESET_TASKS)
DEFAULT_PRESET = "base"

# tasks outside the presets (benchmarks of LLaDA's table whose data the offline pack holds)
EXTRA_TASKS: dict[str, str] = {
    "arc_easy": "illada_arc_easy",
    "piqa": "illada_piqa",
    "winogrande": "illada_winogrande",
}

# short names users type -> benchmark key of PRESET_TASKS / EXTRA_TASKS
ALIASES: dict[str, str] = {
    "arc": "arc_challenge", "arc_c": "arc_challenge", "arc-c": "arc_challenge",
    "arc-challenge": "arc_challenge", "arc_challenge": "arc_challenge",
    "arc_e": "arc_easy", "arc-e": "arc_easy", "arc-easy": "arc_easy", "arc_easy": "arc_easy",
    "mmlu": "mmlu",
    "mmlu_redux": "mmlu_redux", "mmlu-redux": "mmlu_redux", "mmluredux": "mmlu_redux",
    "mmlu_pro": "mmlu_pro", "mmlu-pro": "mmlu_pro", "mmlupro": "mmlu_pro",
    "bbh": "bbh", "big_bench_hard": "bbh", "big-bench-hard": "bbh",
    "hellaswag": "hellaswag",
    "gsm8k": "gsm8k",
    "math": "math", "math500": "math", "math-500": "math", "math_500": "math",
    "minerva_math": "math",
    "humaneval": "humaneval", "human_eval": "humaneval", "human-eval": "humaneval",
    "mbpp": "mbpp",
    "piqa": "piqa",
    "winogrande": "winogrande",
}

# the data each benchmark key reads (data.BENCHMARKS names), to tell which run offline
TASK_DATA: dict[str, str] = {"math": "math500"}

# selector for "every task of the preset whose data the offline mirror holds"
OFFLINE_SELECTOR = "offline"

# generation_kwargs keys that only the diffusion adapter understands; strip them before
# handing a task to an autoregressive backend (lm-eval's ``hf``), whose generate() rejects them
DIFFUSION_GENERATION_KEYS = ("block_length", "steps", "variable_length", "suppress_eos_confidence")


def _check_preset(preset: str) -> dict[str, str]:
    try:
        return PRESET_TASKS[preset]
    except KeyError:
        raise ValueError(f"Unknown preset {preset!r}; presets: {', '.join(PRESETS)}.") from None


def preset_tasks(preset: str = DEFAULT_PRESET) -> list[str]:
    """All task names of a preset, in the paper's table order."""
    return list(_check_preset(preset).values())


def available_offline(benchmark: str) -> bool:
    return BENCHMARKS[TASK_DATA.get(benchmark, benchmark)].offline


def offline_tasks(preset: str = DEFAULT_PRESET) -> list[str]:
    """The preset's tasks whose data the offline mirror holds (``illada-eval data pull``)."""
    return [task for bench, task in _check_preset(preset).items() if available_offline(bench)]


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
    tasks_of_preset = _check_preset(preset)
    entries = [e.strip() for e in (spec.split(",") if isinstance(spec, str) else spec or [])]
    entries = [e for e in entries if e]
    if not entries:
        return preset_tasks(preset)
    ours = {t for tasks in PRESET_TASKS.values() for t in tasks.values()} | set(EXTRA_TASKS.values())
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


def _task_for(benchmark: str, typed: str, preset: str, tasks_of_preset: dict[str, str]) -> str:
    if benchmark in tasks_of_preset:
        return tasks_of_preset[benchmark]
    if benchmark in EXTRA_TASKS:
        return EXTRA_TASKS[benchmark]
    others = [p for p, tasks in PRESET_TASKS.items() if benchmark in tasks]
    raise ValueError(
        f"{typed!r} is not part of the {preset!r} preset (its benchmarks: "
        f"{', '.join(tasks_of_preset)}); it is in: {', '.join(others)}. "
        f"Use --preset {others[0]} to run it with that protocol."
    )
