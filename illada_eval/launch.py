"""Data-parallel runs on one machine: the same command in several processes under torchrun."""
from __future__ import annotations

import os
import subprocess
import sys


def is_launched() -> bool:
    """True inside a process torchrun or ``accelerate launch`` started (it sees WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ


def launch_processes(count: int, argv: list[str]) -> int:
    """Run ``illada-eval run argv`` in ``count`` processes under torchrun; they see WORLD_SIZE and
    split the requests instead of launching again."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={count}",
               "-m", "illada_eval", "run", *argv]
    return subprocess.call(command)
