"""What the benchmark scripts share: the demo model, the machine line, the load check, a timer,
the results file."""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import AutoTokenizer

from illada_eval.adapter import DEMO_MODEL_DIR
from illada_eval.model import ILLaDAConfig, ILLaDAForMaskedLM, load_model

T = TypeVar("T")


def load_demo(**load_kwargs: Any):
    """The embedded demo model (``load_model`` keyword arguments pass through) and its tokenizer."""
    return load_model(DEMO_MODEL_DIR, **load_kwargs), AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)


def random_network(*, vocab: int, hidden: int, intermediate: int, layers: int, heads: int,
                   mask_id: int, eos_id: int | None = None, dtype: torch.dtype = torch.float32,
                   device: str = "cpu") -> ILLaDAForMaskedLM:
    """A randomly initialised network (seed 0) for speed measurements: its outputs mean nothing."""
    config = ILLaDAConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=4096, mask_token_id=mask_id, eos_token_id=eos_id,
    )
    torch.manual_seed(0)
    with torch.device(device):
        return ILLaDAForMaskedLM(config).to(dtype).eval()


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


def parse_checking_load(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, dict[str, Any]]:
    """The parsed arguments, with ``--allow-load`` added, and :func:`check_load`'s record."""
    parser.add_argument("--allow-load", action="store_true",
                        help="run even when the load average exceeds the core count (the timings "
                             "then measure other jobs too; the results record it)")
    args = parser.parse_args()
    return args, check_load(args.allow_load)


def check_load(allow: bool) -> dict[str, Any]:
    """The load average against the core count, before a benchmark starts: refuses to run on a
    busy machine (its timings would measure other jobs) unless ``allow``, then only warns."""
    load, cores = os.getloadavg(), os.cpu_count() or 1
    record = {"cores": cores, "load_average_before": list(load), "under_load": load[0] > cores}
    if record["under_load"]:
        message = (f"the 1-minute load average {load[0]:.2f} exceeds the {cores} cores: timings "
                   "would include other jobs. Wait for a quiet machine, or pass --allow-load to "
                   "measure anyway (the results then say so).")
        if not allow:
            raise SystemExit(f"refusing to run: {message}")
        print(f"WARNING: {message}")
    return record


def timed(fn: Callable[[], T], repeats: int = 1) -> tuple[T, float]:
    """``fn()``'s result and its fastest wall time over ``repeats`` runs (the CPU is shared:
    the fastest run is the one least disturbed by other work)."""
    best = float("inf")
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        result = fn()
        synchronize()
        best = min(best, time.perf_counter() - start)
    return result, best


def synchronize() -> None:
    """Wait for queued GPU work, so a wall-clock timer measures it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def write_results(path: str | Path, machine: str, settings: dict[str, Any], load: dict[str, Any],
                  **numbers: Any) -> None:
    """The benchmark's numbers as JSON, with the machine, the load (``check_load``'s record and
    the load average at the end) and the settings they were measured with."""
    output = Path(path)
    output.parent.mkdir(parents=True, exist_ok=True)
    load = {**load, "load_average_after": list(os.getloadavg())}
    load["under_load"] = load["under_load"] or load["load_average_after"][0] > load["cores"]
    payload = {"machine": machine, "load": load, "settings": settings, **numbers}
    output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written: {output}")
