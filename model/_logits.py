"""Calling a logits callable: unwrapping its output, padding inputs, guidance, selecting positions.

Every diffusion algorithm in this package takes ``model`` = a callable
``model(input_ids, attention_mask)`` returning logits ``[B, L, V]`` or an object with ``.logits``
(a transformers model, for instance). ``attention_mask`` is ``None`` when nothing is padded.
A model that also takes a ``logits_at`` keyword (bool ``[B, L]``) may return only the logits of
those positions, ``[n, V]`` (``ILLaDAForMaskedLM`` does: it projects only what is read); other
models are called without it and their full output is indexed, with the same numbers.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch

LogitsModel = Callable[..., Any]


def takes_logits_at(model: LogitsModel) -> bool:
    """Whether ``model`` accepts the ``logits_at`` keyword (projects only those positions)."""
    forward = model.forward if isinstance(model, torch.nn.Module) else model
    try:
        return "logits_at" in inspect.signature(forward).parameters
    except (TypeError, ValueError):  # builtins and the like have no signature
        return False


def network_output(model: LogitsModel, input_ids: torch.Tensor, logits_at: torch.Tensor | None,
                   *args: Any, **kwargs: Any) -> Any:
    """``model(input_ids, *args, **kwargs)`` whose logits (the output itself, or its ``.logits``)
    are those at ``logits_at`` when it is given: projected there by a model that
    :func:`takes_logits_at`, selected from the full output otherwise."""
    if logits_at is None:
        return model(input_ids, *args, **kwargs)
    if takes_logits_at(model):
        return model(input_ids, *args, logits_at=logits_at, **kwargs)
    output = model(input_ids, *args, **kwargs)
    if isinstance(output, torch.Tensor):
        return output[logits_at]
    output.logits = output.logits[logits_at]
    return output


def call_logits(
    model: LogitsModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    logits_at: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run ``model(input_ids, attention_mask)`` and return its logits: ``[B, L, V]``, or
    ``[n, V]`` at the positions where the bool ``logits_at [B, L]`` is true (row-major order,
    as ``logits[logits_at]``).

    The output may be the tensor itself or an object with ``.logits``. The dtype is left as the
    model produced it (upcasting a full ``[B, L, V]`` tensor would cost memory; callers upcast the
    positions they use).
    """
    if isinstance(model, torch.nn.Module):
        # keyword, as transformers models expect (some take other inputs second)
        output = network_output(model, input_ids, logits_at, attention_mask=attention_mask)
    else:
        output = network_output(model, input_ids, logits_at, attention_mask)
    logits = getattr(output, "logits", output)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(
            f"the model returned {type(output).__name__}; expected a float logits tensor "
            "[batch, length, vocab] or an object with a .logits tensor"
        )
    expected = input_ids.shape if logits_at is None else (int(logits_at.sum()),)
    if logits.dim() != len(expected) + 1 or logits.shape[:-1] != expected:
        raise ValueError(
            f"the model returned logits of shape {tuple(logits.shape)} for input_ids of shape "
            f"{tuple(input_ids.shape)}; expected [batch, length, vocab]"
            + ("" if logits_at is None else f" at {expected[0]} selected positions: [{expected[0]}, vocab]")
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


def select_block(ids: torch.Tensor, start: int, read: torch.Tensor) -> torch.Tensor:
    """Bool ``[B, L]`` like ``ids``: ``read [B, block]`` placed at columns ``start : start + block``."""
    select = torch.zeros(ids.shape, dtype=torch.bool, device=ids.device)
    select[:, start : start + read.shape[1]] = read
    return select


def selected_logits(
    model: LogitsModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    select: torch.Tensor,
    *,
    cfg_scale: float = 0.0,
    uncond_ids: torch.Tensor | None = None,
    model_dtype: bool = False,
) -> torch.Tensor:
    """Logits at the positions where the boolean ``select [B, L]`` is true, as float32 ``[n, V]``
    (only those positions are projected by a model that takes ``logits_at``); with
    ``model_dtype`` in the dtype the model returned, as LLaDA's code keeps them.

    With ``cfg_scale > 0`` the model also sees ``uncond_ids`` (the same canvas with the prompt
    replaced by mask tokens) in the same call, and the result is LLaDA's unsupervised
    classifier-free guidance ``un + (cfg_scale + 1) * (cond - un)``, taken in the result's dtype.
    Only the selected positions are upcast and combined, so memory stays at one model output.
    """
    def as_returned(logits: torch.Tensor) -> torch.Tensor:
        return logits if model_dtype else logits.float()

    if cfg_scale <= 0.0:
        return as_returned(call_logits(model, input_ids, attention_mask, select))
    if uncond_ids is None:
        raise ValueError("cfg_scale > 0 needs uncond_ids (the canvas with the prompt masked)")
    both_ids, both_mask = with_unconditional(input_ids, attention_mask, uncond_ids)
    logits = call_logits(model, both_ids, both_mask, torch.cat([select, select]))
    return apply_guidance(as_returned(logits), cfg_scale)


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
