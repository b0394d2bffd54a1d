"""Training losses of masked diffusion: pre-training, LLaDA SFT, iLLaDA variable-length SFT.

All three draw one forward-masking sample (``masking.forward_mask``), run the model once on the
noisy input and weight the cross-entropy of each masked token by ``1 / p`` — an upper bound on
the negative log-likelihood. They return ``(loss, info)``: ``loss`` is a scalar with gradient,
``info`` holds detached tensors for logging and checks:

- ``masked``: bool ``[B, L]``, the masked positions of this draw;
- ``p_mask``: ``[B]``, each sequence's masking probability;
- ``num_masked``: scalar, how many tokens were masked;
- ``masked_ce``: scalar, the plain (unweighted) mean cross-entropy over masked tokens.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._logits import LogitsModel, call_logits
from .masking import Generators, forward_mask

LossOutput = tuple[torch.Tensor, dict[str, torch.Tensor]]


def _weighted_masked_ce(
    model: LogitsModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    maskable: torch.Tensor,
    *,
    mask_id: int,
    eps: float,
    generator: Generators,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token ``CE / p`` ``[B, L]`` (zero where not masked) for one masking draw, and info."""
    draw = forward_mask(input_ids, mask_id=mask_id, eps=eps, maskable=maskable, generator=generator)
    logits = call_logits(model, draw.noisy_ids, attention_mask)
    ce = F.cross_entropy(logits[draw.masked].to(torch.promote_types(logits.dtype, torch.float32)), input_ids[draw.masked], reduction="none")
    weighted = torch.zeros(input_ids.shape, dtype=ce.dtype, device=ce.device)
    weighted[draw.masked] = ce / draw.p_mask[:, None].expand_as(draw.masked)[draw.masked]
    num_masked = draw.masked.sum()
    info = {
        "masked": draw.masked,
        "p_mask": draw.p_mask,
        "num_masked": num_masked,
        "masked_ce": (ce.sum() / num_masked.clamp(min=1)).detach(),
    }
    return weighted, info


def _real_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    if attention_mask is None:
        return torch.ones_like(input_ids, dtype=torch.bool)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask has shape {tuple(attention_mask.shape)}, input_ids "
            f"{tuple(input_ids.shape)}: pass a [batch, length] 0/1 mask (1 = real token)"
        )
    return attention_mask.bool()


def pretrain_loss(
    model: LogitsModel,
    input_ids: torch.Tensor,
    *,
    mask_id: int,
    eps: float = 1e-3,
    generator: Generators = None,
    attention_mask: torch.Tensor | None = None,
) -> LossOutput:
    """LLaDA / iLLaDA pre-training loss for ``input_ids [B, L]``.

    Every token is masked with probability ``p = (1 - eps) t + eps`` (``t ~ U(0, 1)`` per
    sequence); loss = sum over masked tokens of ``CE / p``, divided by ``B * L``. With an
    ``attention_mask`` (1 = real token, 0 = padding) padding is never masked and the divisor is
    the number of real tokens (``B * L`` when nothing is padded). ``generator`` (on the
    input's device) makes the draw reproducible.
    """
    real = _real_tokens(input_ids, attention_mask)
    weighted, info = _weighted_masked_ce(
        model, input_ids, attention_mask, real, mask_id=mask_id, eps=eps, generator=generator
    )
    return weighted.sum() / real.sum().clamp(min=1), info


def variable_length_sft_loss(
    model: LogitsModel,
    input_ids: torch.Tensor,
    *,
    mask_id: int,
    eps: float = 1e-3,
    generator: Generators = None,
    attention_mask: torch.Tensor | None = None,
) -> LossOutput:
    """iLLaDA's variable-length SFT loss on packed sequences.

    Each example is ``prompt + response + EOS``; examples are concatenated and cut into
    fixed-length rows by the data pipeline. The whole row — prompt, response and EOS alike — is
    masked with the pre-training objective (``1 / p`` weighting, divided by the number of
    tokens), which is what lets the model learn where an answer ends. Identical to
    :func:`pretrain_loss`; kept as its own name so recipes say which objective they train.
    """
    return pretrain_loss(
        model, input_ids, mask_id=mask_id, eps=eps, generator=generator,
        attention_mask=attention_mask,
    )


def sft_loss(
    model: LogitsModel,
    input_ids: torch.Tensor,
    prompt_lengths: torch.Tensor,
    *,
    mask_id: int,
    eps: float = 1e-3,
    generator: Generators = None,
    attention_mask: torch.Tensor | None = None,
) -> LossOutput:
    """LLaDA's SFT loss for ``input_ids [B, L]`` = prompt + response (+ EOS padding).

    The first ``prompt_lengths[b]`` tokens of row ``b`` are never masked. Everything after the
    prompt is response: LLaDA pads short pairs with EOS *without* an attention mask, so the EOS
    padding is masked and trained on and counts in the response length. Each row's
    ``sum of CE / p`` over masked tokens is divided by its response length; the loss is the mean
    over rows. With an ``attention_mask`` its zero positions are neither masked nor counted.
    """
    prompt_lengths = torch.as_tensor(prompt_lengths, device=input_ids.device).reshape(-1)
    if prompt_lengths.numel() != input_ids.shape[0]:
        raise ValueError(
            f"prompt_lengths has {prompt_lengths.numel()} entries for a batch of "
            f"{input_ids.shape[0]} rows: give one prompt length per row"
        )
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    response = (positions[None, :] >= prompt_lengths[:, None]) & _real_tokens(input_ids, attention_mask)
    response_lengths = response.sum(dim=1)
    if bool((response_lengths == 0).any()):
        rows = (response_lengths == 0).nonzero().flatten().tolist()
        raise ValueError(f"rows {rows} have no response tokens after their prompt: check prompt_lengths")
    weighted, info = _weighted_masked_ce(
        model, input_ids, attention_mask, response, mask_id=mask_id, eps=eps, generator=generator
    )
    loss = (weighted.sum(dim=1) / response_lengths).mean()
    return loss, info
