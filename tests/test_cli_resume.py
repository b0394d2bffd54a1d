"""Issue 9's crash test: an evaluation killed with SIGKILL at a random point and run again with
the same command finishes with the metrics of an uninterrupted run, recomputing no request that
had finished (lm-eval's request cache, written request by request)."""
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from illada_eval.cli import main
from lm_eval_fixtures import one_torch_thread  # noqa: F401  (autouse: one torch thread)
from lm_eval_fixtures import read_results, write_checkpoint, write_copy_task

DOCS, CHOICES = 30, 3


def cache_file(directory):
    """The run's cache database: the prefix, the settings fingerprint, the process rank."""
    return next(directory.glob("requests_*_rank0.db"), directory / "not-yet")


def finished_requests(database):
    """Rows in the request cache (sqlitedict's default table), 0 before it exists."""
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute('SELECT COUNT(*) FROM "unnamed"').fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


def test_sigkilled_run_resumes_with_identical_metrics(tmp_path):
    tasks = write_copy_task(tmp_path / "tasks", "toy_many", DOCS, {"scoring": "elbo", "mc_num": 4, "mc_batch_size": 4})
    checkpoint = write_checkpoint(tmp_path / "ckpt")
    cache = tmp_path / "cache" / "requests"
    command = ["--model", str(checkpoint), "--tasks", "toy_many", "--include-path", str(tasks),
               "--batch-size", "1", "--bootstrap-iters", "0", "--seed", "3"]
    resumed_out, reference_out = tmp_path / "resumed.json", tmp_path / "reference.json"

    kill_after = random.Random(9).randint(3, DOCS * CHOICES // 2)
    process = subprocess.Popen(
        [sys.executable, "-m", "illada_eval", *command, "--use-cache", str(cache), "--output", str(resumed_out)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while finished_requests(cache_file(tmp_path / "cache")) < kill_after and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if process.poll() is not None:
        pytest.fail(f"the run ended (code {process.returncode}) before {kill_after} requests were cached")
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = finished_requests(cache_file(tmp_path / "cache"))
    assert kill_after <= finished < DOCS * CHOICES
    assert not list(tmp_path.glob("resumed*.json"))

    assert main([*command, "--use-cache", str(cache), "--output", str(resumed_out)]) == 0
    assert main([*command, "--output", str(reference_out)]) == 0
    resumed, reference = (read_results(p) for p in (resumed_out, reference_out))
    assert resumed["results"]["toy_many"] == reference["results"]["toy_many"]
    speed = resumed["illada_eval"]["speed"]
    assert speed["per_request_type"]["loglikelihood"]["requests"] == DOCS * CHOICES - finished
    assert speed["requests"] == DOCS * CHOICES and speed["cached_requests"] == finished
