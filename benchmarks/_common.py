"""What the benchmark scripts share: the demo model, the machine line, a timer, the results file."""
from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import AutoTokenizer

from illada_eval.model import load_model
from illada_eval.adapter import DEMO_MODEL_DIR

T = TypeVar("T")


def load_demo(**load_kwargs: Any):
    """The embedded demo model (``load_model`` keyword arguments pass through) and its tokenizer."""
    return load_model(DEMO_MODEL_DIR, **load_kwargs), AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)


def machine_line() -> str:
    """The hardware a benchmark ran on, in one line (CPU model, cores, torch threads, GPU)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass  # not Linux: keep platform's name
    line = f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    if torch.cuda.is_available():
        line += f", {torch.cuda.get_device_name()}"
    return line


def timed(fn: Callable[[], T], repeats: int = 1) -> tuple[T, float]:
    """``fn()``'s result and its fastest wall time over ``repeats`` runs (the CPU is shared:
    the fastest run is the one least disturbed by other work)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def write_results(path: str | Path, machine: str, settings: dict[str, Any], **numbers: Any) -> None:
    """The benchmark's numbers as JSON, with the machine and settings they were measured with."""
    output = Path(path)
    output.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine, "settings": settings, **numbers}
    output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written: {output}")
