"""lm-eval's task index, built cheaply: this project's tasks always, lm-eval's own only when asked.

Indexing lm-eval's ~14,000 task YAMLs takes about 12 s on the 2-core development machine, and
most runs use only this project's tasks (0.03 s to index). So :func:`task_manager` indexes
lm-eval's tasks only when ``with_lm_eval_tasks`` is set, and keeps that index in a pickle under
``~/.cache/illada_eval/`` (about 1 s to read), keyed by lm-eval's version and the newest
modification time of its task folder, so an upgrade or an edited YAML rebuilds it.
"""
from __future__ import annotations

import functools
import logging
import os
import pickle
import tempfile
from itertools import chain
from pathlib import Path
from typing import Any

from illada_eval.tasks import TASKS_DIR

log = logging.getLogger(__name__)

INDEX_CACHE_DIR = Path("~/.cache/illada_eval")
INDEX_CACHE_ENV = "ILLADA_EVAL_CACHE_DIR"


def task_manager(include_paths: tuple[str, ...] = (), with_lm_eval_tasks: bool = True) -> Any:
    """A ``lm_eval.tasks.TaskManager`` over this project's tasks, ``include_paths`` and (unless
    ``with_lm_eval_tasks`` is False) lm-eval's own tasks, read from the on-disk index cache.

    Pass it as ``task_manager=`` to ``lm_eval.simple_evaluate`` to run this project's tasks
    from your own scripts. Managers are shared within a process (each run builds its own task
    objects from one).
    """
    return _task_manager(tuple(str(Path(p).expanduser()) for p in include_paths), with_lm_eval_tasks)


@functools.lru_cache(maxsize=4)
def _task_manager(include_paths: tuple[str, ...], with_lm_eval_tasks: bool) -> Any:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=[str(TASKS_DIR), *include_paths], include_defaults=False)
    if with_lm_eval_tasks:
        # ours and the include paths win over lm-eval's tasks of the same name, as in lm-eval
        _set_index(manager, lm_eval_index() | manager.task_index)
    return manager


def _set_index(manager: Any, index: dict[str, Any]) -> None:
    """Give ``manager`` another index, with the name lists TaskManager derives from it."""
    from lm_eval.tasks._index import Kind

    kinds: dict[Any, list[str]] = {}
    for name, entry in index.items():
        kinds.setdefault(entry.kind, []).append(name)
    manager._index = index
    manager._all_tasks = sorted(index)
    manager._all_subtasks = sorted(chain(kinds.get(Kind.TASK, []), kinds.get(Kind.PY_TASK, [])))
    manager._all_groups = sorted(kinds.get(Kind.GROUP, []))
    manager._all_tags = sorted(kinds.get(Kind.TAG, []))


def lm_eval_index() -> dict[str, Any]:
    """lm-eval's own task index, from the disk cache when it is current, else built and cached."""
    import lm_eval
    from lm_eval.tasks import __file__ as tasks_init
    from lm_eval.tasks._index import TaskIndex

    tasks_dir = Path(tasks_init).parent
    stamp = f"{lm_eval.__version__}-{_newest_mtime(tasks_dir)}"
    cache = cache_dir() / f"lm_eval_task_index-{stamp}.pickle"
    try:
        with cache.open("rb") as fh:
            return pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        pass  # absent, stale or unreadable: rebuild
    log.warning("indexing lm-eval's own tasks (once; cached in %s)", cache.parent)
    index = TaskIndex.build([tasks_dir])
    _write_cache(cache, index)
    return index


def cache_dir() -> Path:
    return Path(os.environ.get(INDEX_CACHE_ENV) or INDEX_CACHE_DIR).expanduser()


def _newest_mtime(folder: Path) -> int:
    """The newest modification time (ns) among ``folder`` and its subfolders: adding, removing or
    renaming a YAML changes its folder's time, and so does installing another lm-eval."""
    newest = 0
    for root, dirs, _files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]  # Python writes there when it imports a task's code
        newest = max(newest, os.stat(root).st_mtime_ns)
    return newest


def _write_cache(path: Path, index: dict[str, Any]) -> None:
    """Write the pickle atomically; a cache that cannot be written only costs the next run time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob("lm_eval_task_index-*.pickle"):
            old.unlink(missing_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as fh:
            pickle.dump(index, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(fh.name, path)
    except OSError as error:
        log.warning("could not cache lm-eval's task index in %s (%s)", path.parent, error)
