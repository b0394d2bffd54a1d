"""lm-eval's task index: our tasks indexed alone (fast), lm-eval's own only for a name outside
them, and then read from a disk cache instead of 14,000 YAMLs."""
import logging

import pytest
from lm_eval.tasks import TaskManager
from lm_eval.tasks._index import TaskIndex

from illada_eval import task_index, task_setup
from illada_eval.listing import project_task_names
from illada_eval.tasks import TASKS_DIR


@pytest.fixture
def fresh_index(monkeypatch, tmp_path):
    """An empty cache folder, no managers kept from other tests, and lm-eval's index replaced by
    one task (``lm_eval_only``) with a count of how often it was built."""
    monkeypatch.setenv(task_index.INDEX_CACHE_ENV, str(tmp_path))
    task_index._task_manager.cache_clear()
    builds = []
    ours = TaskIndex.build([TASKS_DIR])
    real_build = TaskIndex.build

    def build(paths, **kwargs):
        if any(str(p) != str(TASKS_DIR) for p in paths) and "lm_eval" in str(list(paths)[0]):
            builds.append(paths)
            entry = next(iter(ours.values()))
            return {"lm_eval_only": type(entry)(name="lm_eval_only", kind=entry.kind, yaml_path=entry.yaml_path,
                                                cfg=dict(entry.cfg or {}, task="lm_eval_only"))}
        return real_build(paths, **kwargs)

    monkeypatch.setattr(TaskIndex, "build", staticmethod(build))
    yield builds
    task_index._task_manager.cache_clear()


def test_our_task_names_need_no_lm_eval_index(fresh_index):
    names, manager = task_setup.resolve("arc,illada_sanity_mc", "base", [])
    assert names == ["illada_arc_challenge", "illada_sanity_mc"]
    assert fresh_index == [] and "lm_eval_only" not in manager.all_tasks


def test_a_name_outside_ours_reads_lm_evals_index_once_then_from_disk(fresh_index, tmp_path):
    names, manager = task_setup.resolve("lm_eval_only", "base", [])
    assert names == ["lm_eval_only"] and "illada_sanity_mc" in manager.all_tasks
    assert len(fresh_index) == 1
    (cache,) = tmp_path.glob("lm_eval_task_index-*.pickle")
    task_index._task_manager.cache_clear()  # a new process
    assert "lm_eval_only" in task_setup.resolve("lm_eval_only", "base", [])[1].all_subtasks
    assert len(fresh_index) == 1, "the second run read the cache"
    assert list(tmp_path.glob("lm_eval_task_index-*.pickle")) == [cache]


def test_a_stale_cache_is_replaced(fresh_index, tmp_path):
    stale = tmp_path / "lm_eval_task_index-0.0.1-123.pickle"
    stale.write_bytes(b"not a pickle")
    task_setup.resolve("lm_eval_only", "base", [])
    assert not stale.exists() and len(list(tmp_path.glob("*.pickle"))) == 1


def test_unknown_names_still_get_the_closest(fresh_index):
    with pytest.raises(ValueError, match="Unknown task 'lm_eval_onyl'.*lm_eval_only"):
        task_setup.resolve("lm_eval_onyl", "base", [])


def test_ls_reads_the_same_task_names_as_lm_eval():
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    assert project_task_names() == set(manager.all_groups + manager.all_subtasks)


def test_building_our_tasks_logs_no_metadata_advice(caplog):
    """lm-eval advises --metadata for every task that reads data through a function (ours do)."""
    task_index._task_manager.cache_clear()
    manager = task_index.task_manager(with_lm_eval_tasks=False)
    with caplog.at_level(logging.WARNING):
        (task,) = task_setup.build(manager, ["illada_sanity_mc"])
    assert task.config.custom_dataset is not None, "the task reads its data through a function"
    assert not [r.getMessage() for r in caplog.records if "--metadata" in r.getMessage()]


def test_our_groups_over_lm_evals_tasks_get_lm_evals_index(fresh_index):
    """illada_mmlu lists lm-eval's mmlu_<subject> tasks: they must be known when it is built."""
    names, manager = task_setup.resolve("mmlu", "illada-base", [])
    assert names == ["illada_mmlu"] and "lm_eval_only" in manager.all_tasks
    names, manager = task_setup.resolve("arc", "illada-base", [])
    assert names == ["illada_arc_challenge"] and "lm_eval_only" not in manager.all_tasks  # ours alone: fast
