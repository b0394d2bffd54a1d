"""Calling a logits callable: unwrapping its output, padding inputs, guidance, selecting positions.

Every diffusion algorithm in this package takes ``model`` = a callable
``model(input_ids, attention_mask)`` returning logits ``[B, L, V]`` or an object with ``.logits``
(a transformers model, for instance). ``attention_mask`` is ``None`` when nothing is padded.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

LogitsModel = Callable[..., Any]


def call_logits(
    model: LogitsModel, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Run ``model(input_ids, attention_mask)`` and return its logits ``[B, L, V]``.

    The output may be the tensor itself or an object with ``.logits``. The dtype is left as the
    model produced it (upcasting a full ``[B, L, V]`` tensor would cost memory; callers upcast the
    positions they use).
    """
    if isinstance(model, torch.nn.Module):
        # keyword, as transformers models expect (some take other inputs second)
        output = model(input_ids, attention_mask=attention_mask)
    else:
        output = model(input_ids, attention_mask)
    logits = getattr(output, "logits", output)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(
            f"the model returned {type(output).__name__}; expected a float logits tensor "
            "[batch, length, vocab] or an object with a .logits tensor"
        )
    if logits.dim() != 3 or logits.shape[:2] != input_ids.shape:
        raise ValueError(
            f"the model returned logits of shape {tuple(logits.shape)} for input_ids of shape "
            f"{tuple(input_ids.shape)}; expected [batch, length, vocab]"
        )
    return logits


def model_device(model: LogitsModel) -> torch.device:
    """The device a model's inputs should live on (CPU for plain callables without parameters)."""
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    if isinstance(model, torch.nn.Module):
        for parameter in model.parameters():
            return parameter.device
    return torch.device("cpu")


def pad_batch(
    sequences: Sequence[Sequence[int]], *, pad_id: int, side: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pad token-id lists to one tensor; the attention mask is ``None`` when nothing is padded."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    width = max((len(seq) for seq in sequences), default=0)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if not seq:
            continue
        span = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
        ids[row, span] = torch.as_tensor(seq, dtype=torch.long)
        attention[row, span] = 1
    needs_mask = any(len(seq) != width for seq in sequences)
    return ids.to(device), (attention.to(device) if needs_mask else None)


def selected_logits(
    model: LogitsModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    select: torch.Tensor,
    *,
    cfg_scale: float = 0.0,
    uncond_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits at the positions where the boolean ``select [B, L]`` is true, as float32 ``[n, V]``.

    With ``cfg_scale > 0`` the model also sees ``uncond_ids`` (the same canvas with the prompt
    replaced by mask tokens) in the same call, and the result is LLaDA's unsupervised
    classifier-free guidance ``un + (cfg_scale + 1) * (cond - un)``. Only the selected positions
    are upcast and combined, so memory stays at one model output.
    """
    if cfg_scale <= 0.0:
        return call_logits(model, input_ids, attention_mask)[select].float()
    if uncond_ids is None:
        raise ValueError("cfg_scale > 0 needs uncond_ids (the canvas with the prompt masked)")
    logits = call_logits(model, *with_unconditional(input_ids, attention_mask, uncond_ids))
    return apply_guidance(logits[torch.cat([select, select])].float(), cfg_scale)


def with_unconditional(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, uncond_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The conditional rows, then their unconditional copies, as one batch (one model call)."""
    both_mask = None if attention_mask is None else torch.cat([attention_mask, attention_mask])
    return torch.cat([input_ids, uncond_ids]), both_mask


def apply_guidance(logits: torch.Tensor, cfg_scale: float) -> torch.Tensor:
    """LLaDA's unsupervised classifier-free guidance ``un + (cfg_scale + 1) * (cond - un)`` on
    the logits of a :func:`with_unconditional` batch (conditional half first)."""
    cond, uncond = logits.chunk(2, dim=0)
    return uncond + (cfg_scale + 1.0) * (cond - uncond)
