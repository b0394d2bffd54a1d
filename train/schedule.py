"""Learning-rate schedule of the papers: linear warmup, constant, then a final decay.

Pre-training decays with a cosine once the loss has plateaued (iLLaDA); SFT decays linearly over
the last 10% of steps (LLaDA, iLLaDA). The rate is a pure function of the step, so a resumed run
follows the same curve.
"""
from __future__ import annotations

import math

import torch


def lr_at(
    step: int, *, lr: float, min_lr: float, warmup_steps: int, max_steps: int,
    decay_fraction: float, decay: str,
) -> float:
    """The learning rate of optimizer step ``step`` (0-based) out of ``max_steps``."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = round(max_steps * decay_fraction)
    decay_start = max(warmup_steps, max_steps - decay_steps)
    if step < decay_start or decay_steps == 0:
        return lr
    progress = min(1.0, (step - decay_start + 1) / max(1, max_steps - decay_start))
    if decay == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif decay == "linear":
        shape = 1.0 - progress
    else:
        raise ValueError(f"decay must be 'cosine' or 'linear', got {decay!r}")
    return min_lr + (lr - min_lr) * shape


def build_scheduler(optimizer: torch.optim.Optimizer, **schedule) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR whose factor times the peak ``lr`` is :func:`lr_at`."""
    peak = schedule["lr"]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, **schedule) / peak)
