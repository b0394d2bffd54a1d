"""The tasks of a run: names resolved, task objects built, and what their metadata asks of the model.

Our task YAMLs hold each task's protocol: the likelihood settings in ``metadata.illada`` (the keys
of :data:`illada_eval.settings.SCORING`, plus ``chat_template``), the generation settings in
``generation_kwargs``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from illada_eval import presets
from illada_eval.registry import protocol_of_task
from illada_eval.data import DataUnavailableError
from illada_eval.settings import DIFFUSION_GENERATION_KEYS, SCORING_KEYS
from illada_eval.task_index import task_manager

# lm-eval warns for every task that reads data through a function (all of ours) that its
# keyword arguments could come from --metadata: advice that does not apply here
_METADATA_ADVICE = "Custom kwargs can be passed to `--metadata`"


class _DropMetadataAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _METADATA_ADVICE not in record.getMessage()


logging.getLogger("lm_eval.api.task").addFilter(_DropMetadataAdvice())


def resolve(spec: str | None, preset: str, include_paths: list[str]) -> tuple[list[str], Any]:
    """The task names of ``--tasks`` and a task manager that knows them.

    Our tasks and the include paths are indexed first; lm-eval's own index (cached on disk, see
    :mod:`illada_eval.task_index`) is read only when a name is not found there, or when one of
    our tasks builds on lm-eval's registered tasks (the MMLU and BBH groups, lm-eval's GSM8K).
    """
    paths = tuple(include_paths)
    manager = task_manager(paths, with_lm_eval_tasks=False)
    try:
        names = presets.resolve_tasks(spec, preset, known_tasks=manager.all_tasks)
    except ValueError:
        manager = task_manager(paths, with_lm_eval_tasks=True)
        try:
            return presets.resolve_tasks(spec, preset, known_tasks=manager.all_tasks), manager
        except ValueError as error:
            raise ValueError(f"{error}{unreadable_task_files(include_paths)}") from None
    entries = (protocol_of_task(name)[1] for name in names)
    if any(entry is not None and entry.builds_on_lm_eval_tasks for entry in entries):
        manager = task_manager(paths, with_lm_eval_tasks=True)
    return names, manager


def build(manager: Any, names: list[str]) -> list[Any]:
    """The task and group objects of ``names`` (lm-eval reads each task's data here). Every task
    whose data cannot be had is named in one error, before any model loads."""
    built, unavailable = [], []
    for name in names:
        try:
            built += load_task(manager, name)
        except (DataUnavailableError, FileNotFoundError) as error:  # no Hub, or not in the mirror
            unavailable.append(f"{name}: {error}")
    if unavailable:
        raise DataUnavailableError(
            f"{len(unavailable)} of {len(names)} tasks cannot get their data; leave them out of "
            "--tasks or make the data available:\n  " + "\n  ".join(unavailable)
        )
    return built


def unreadable_task_files(folders: list[str]) -> str:
    """A note naming the task YAMLs under ``folders`` that do not parse (lm-eval's index skips
    them without a word, so their tasks look unknown)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    problems = []
    for folder in folders:
        for path in sorted(Path(folder).expanduser().rglob("*.yaml")):
            try:
                load_yaml(path, resolve_func=False)
            except Exception as error:  # YAML syntax, a bad include: each is worth naming
                problems.append(f"{path}: {str(error).splitlines()[0]}")
    return (" These task files could not be read: " + "; ".join(problems)) if problems else ""


def load_task(manager: Any, name: str) -> list[Any]:
    """The built task or group objects a name stands for (a tag gives several tasks)."""
    try:
        loaded = manager.load([name])
    except KeyError as error:
        raise ValueError(f"lm-eval could not load task {name!r}: {error}") from error
    if name in loaded["groups"]:
        return [loaded["groups"][name]]
    if name in loaded["tasks"]:
        return [loaded["tasks"][name]]
    return list(loaded["tasks"].values())


def leaf_tasks(obj: Any) -> list[Any]:
    return list(obj.get_all_tasks()) if hasattr(obj, "get_all_tasks") else [obj]


def illada_metadata(task: Any) -> dict[str, Any]:
    metadata = task.config.metadata if isinstance(task.config.metadata, dict) else {}
    return dict(metadata.get("illada") or {})


def scoring_settings(task: Any) -> dict[str, Any]:
    """The adapter's likelihood settings of a task: its ``metadata.illada`` scoring keys, and
    whether lm-eval's greedy flag is computed: only where it is read (``loglikelihood`` tasks'
    acc) and the task does not turn it off (``greedy: false``, as LLaDA's protocol does)."""
    illada = illada_metadata(task)
    settings = {key: illada[key] for key in SCORING_KEYS if illada.get(key) is not None}
    # (the value is checked with the other settings, before the model loads)
    settings["greedy"] = task.get_config("output_type") == "loglikelihood" and settings.get("greedy", True)
    return settings


def wants_chat_template(task: Any, mode: str) -> bool:
    if mode != "auto":
        return mode == "on"
    return bool(illada_metadata(task).get("chat_template", False))


def chat_flag(obj: Any, chat: dict[str, bool]) -> bool:
    """A group runs with the chat template when its tasks ask for it."""
    return all(chat[task.task_name] for task in leaf_tasks(obj))


def check_generation_budgets(lm: Any, tasks: dict[str, Any], overrides: dict[str, Any] | None) -> None:
    """Every generation task's budget fits the model, checked before the first request runs."""
    for name, task in tasks.items():
        if task.get_config("output_type") != "generate_until":
            continue
        gen_kwargs = dict(task.get_config("generation_kwargs") or {}) | (overrides or {})
        try:
            lm.check_generation(gen_kwargs)
        except ValueError as error:
            raise ValueError(f"task {name}: {error}") from None


def strip_diffusion_generation_keys(task: Any) -> None:
    """Drop the sampler's keys from generation_kwargs: lm-eval's hf generate() rejects them."""
    kwargs = task.get_config("generation_kwargs")
    if isinstance(kwargs, dict):
        kept = {k: v for k, v in kwargs.items() if k not in DIFFUSION_GENERATION_KEYS}
        task.set_config("generation_kwargs", kept)
