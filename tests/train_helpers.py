"""Tiny training runs for the trainer tests: a small network, a char tokenizer, a few steps."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from illada_eval.train.config import load_config
from illada_eval.train.trainer import LOG_FILE, train

TINY_MODEL = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
    "rope_theta": 10000.0,
}
TINY_RUN = {
    "tokenizer": "char",
    "model": TINY_MODEL,
    "seq_len": 24,
    "batch_size": 4,
    "micro_batch_size": 2,
    "max_steps": 6,
    "lr": 3e-3,
    "min_lr": 3e-4,
    "warmup_steps": 1,
    "decay_fraction": 0.5,
    "log_every": 1,
    "save_every": 2,
    "keep_checkpoints": 3,
    "cpu": True,
    "mixed_precision": "no",
    "progress": False,
}
# the packed SFT objective with both row kinds: the hardest case for matching masks across runs
PACKED = {"objective": "sft-illada", "two_segment_prob": 0.5, "random_length_prob": 0.3}
TESTS_DIR = Path(__file__).resolve().parent


# Two runs that differ only in how gradients are summed (processes, shards) give weights that
# differ by float32 rounding: each AdamW step moves a weight by at most about lr (3e-3 here),
# and a rounding-level change of a gradient changes that step by a far smaller amount. 1e-5
# over a few steps is 1/300 of one step, yet ~100x the largest difference seen (1e-7).
CROSS_PROCESS_ATOL = 1e-5


def assert_close_tensors(actual: dict, expected: dict, *, atol: float, what: str) -> None:
    """Every tensor of ``expected`` equal to ``actual``'s within ``atol``; a failure names the
    tensor and the size of the difference."""
    assert actual.keys() == expected.keys(), f"{what}: tensor names differ"
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=atol,
                                   msg=lambda text: f"{what}, {name}: {text}")


def sft_pairs(path: Path, count: int = 40) -> Path:
    """Prompt/response records in a .jsonl file (a reversal task: learnable, not trivial)."""
    words = ["abc", "bcd", "cde", "dab", "ebca", "fa", "gbe", "hdc"]
    with path.open("w") as handle:
        for index in range(count):
            word = words[index % len(words)] * (1 + index % 2)
            handle.write(json.dumps({"prompt": f"rev {word}=", "response": word[::-1]}) + "\n")
    return path


def tiny_config(recipe: str | None = None, **overrides):
    """A recipe (or none) with the tiny settings and ``overrides`` on top."""
    settings = {**TINY_RUN, **overrides}
    return load_config(recipe, settings)


def run(recipe: str | None = None, **overrides) -> list[dict]:
    """Train, then return the JSONL log records."""
    config = tiny_config(recipe, **overrides)
    train(config)
    return read_log(Path(config.output_dir))


def read_log(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / LOG_FILE).read_text().splitlines() if line]


def child_env() -> dict[str, str]:
    # one thread per process: two processes on a small CPU otherwise fight over the cores
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS_DIR)}


def as_flags(settings: dict) -> list[str]:
    """``settings`` as illada-train command-line flags (``model`` keys as ``--model.KEY``)."""
    flags = []
    for key, value in settings.items():
        if isinstance(value, dict):
            for sub, sub_value in value.items():
                flags += [f"--{key}.{sub}", str(sub_value)]
        else:
            flags += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return flags


def launch_two_processes(module: str, **overrides) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node 2 -m module`` with the tiny settings and ``overrides`` as flags;
    fails the test with the processes' stderr if they fail."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", module, *as_flags({**TINY_RUN, **overrides})]
    finished = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished
