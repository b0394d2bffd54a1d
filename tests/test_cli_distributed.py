"""Data parallel: two CPU processes (``--processes 2``: torchrun, gloo) split the requests and give the metrics and
per-document responses of a single process."""
import json
import subprocess
import sys

import pytest

from illada_eval.cli import main
from lm_eval_fixtures import one_torch_thread  # noqa: F401  (autouse: one torch thread)
from lm_eval_fixtures import write_checkpoint, write_tasks

TASKS = "toy_mc,toy_ll,toy_gen,toy_ppl"


def responses(run_dir, task):
    (path,) = run_dir.rglob(f"samples_{task}_*.jsonl")
    return {row["doc_id"]: row["resps"] for row in map(json.loads, path.read_text().splitlines())}


def split_values(nested):
    """The floats of a nested response, and everything else, in order."""
    numbers, others = [], []
    for item in nested if isinstance(nested, list) else [nested]:
        if isinstance(item, list):
            more_numbers, more_others = split_values(item)
            numbers += more_numbers
            others += more_others
        elif isinstance(item, float):
            numbers.append(item)
        else:
            others.append(item)
    return numbers, others


def test_two_processes_give_the_metrics_of_one(tmp_path):
    tasks = write_tasks(tmp_path / "tasks")
    checkpoint = write_checkpoint(tmp_path / "ckpt")
    command = ["--model", str(checkpoint), "--tasks", TASKS, "--include-path", str(tasks), "--batch-size", "2",
               "--bootstrap-iters", "0", "--log-samples"]
    two, one = tmp_path / "two", tmp_path / "one"  # output folders
    # the command's own launcher: torchrun with two processes, which meet over gloo on a CPU
    launched = subprocess.run(
        [sys.executable, "-m", "illada_eval", "--processes", "2", *command, "--output", str(two)],
        capture_output=True, text=True, timeout=400,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert main([*command, "--output", str(one)]) == 0

    parallel, single = (json.loads(next(run.rglob("results_*.json")).read_text()) for run in (two, one))
    assert parallel["illada_eval"]["speed"]["processes"] == 2
    assert parallel["config"]["illada_adapter"]["world_size"] == 2
    for task in TASKS.split(","):
        assert parallel["results"][task] == pytest.approx(single["results"][task], abs=1e-5)
        assert responses(two, task).keys() == responses(one, task).keys()
        for doc_id, resps in responses(one, task).items():
            # the first response of each request: lm-eval pads the shorter process's request list
            # with copies of its last request, whose extra responses are never scored
            numbers, others = split_values([r[0] for r in resps])
            numbers_two, others_two = split_values([r[0] for r in responses(two, task)[doc_id]])
            assert others == others_two  # generated text, greedy flags
            assert numbers == pytest.approx(numbers_two, abs=1e-4)  # log-likelihoods
