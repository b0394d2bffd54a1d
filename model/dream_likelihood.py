"""Dream's Monte Carlo likelihood (SMDM's estimator, as Dream's lm-eval harness runs it).

The continuation gets an EOS token appended. Each draw takes a time ``t``, masks every
maskable continuation position independently with probability ``p = (1 - eps) * t + eps``,
and scores ``sum_{i masked} log p(c_i | rest) / p``; the estimate is the mean over ``mc_num``
draws. The draws come in mini-batches of ``mc_batch_size`` whose times are stratified:
``t_j = (u + j / mc_batch_size) mod 1`` with one uniform ``u`` per mini-batch, so each ``t_j`` is
uniform on ``[0, 1)``. The first and the last position of the whole sequence are never masked:
the last is the appended EOS, the first is the BOS (or, without a prompt, the continuation's
first token, which a shifted network has nothing to predict from).

In expectation this is ``E_{p ~ U[eps, 1)} E_mask[sum_{i masked} log p(c_i | rest) / p]``,
a lower bound on ``log p(continuation + EOS | prompt)`` for a model that knows the masking
process. Unlike :func:`~.likelihood.elbo_loglikelihood` the number masked is random, so a draw
can mask nothing (it scores 0 and costs no model call).
"""
from __future__ import annotations

import torch

from ._logits import LogitsModel
from .likelihood import TokenLists, _Pairs, _score_mask_plans
from .masking import derive_seed, seeded_generator


def stratified_times(count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` times ``(u + j / count) mod 1`` from one uniform ``u``: each uniform on
    ``[0, 1)``, together one per stratum of width ``1 / count`` (float64)."""
    u = torch.rand((), dtype=torch.float64, generator=generator)
    return (u + torch.arange(count, dtype=torch.float64) / count) % 1.0


def dream_mask_plan(
    length: int,
    *,
    mc_num: int,
    mc_batch_size: int,
    generator: torch.Generator,
    eps: float = 1e-3,
    first_is_sequence_start: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks and weights of Dream's estimator for a continuation of ``length`` tokens (EOS
    included, as its last token).

    Returns bool ``masks [n, length]`` and float64 ``weights [n]`` such that the estimate is
    ``sum_r weights[r] * sum_{i masked in r} log p(c_i | prompt, c with mask r)``: a draw with
    masking probability ``p`` has weight ``1 / (p * mc_num)``. The last position is never
    masked, nor the first when ``first_is_sequence_start`` (no prompt before it). Draws that
    mask nothing are left out; identical masks are merged (weights added).
    """
    if mc_num < 1 or mc_batch_size < 1 or mc_num % mc_batch_size:
        raise ValueError(
            f"mc_num ({mc_num}) must be a positive multiple of mc_batch_size ({mc_batch_size}) "
            "(Dream's draws come in stratified mini-batches)"
        )
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    maskable = torch.ones(length, dtype=torch.bool)
    maskable[-1:] = False
    if first_is_sequence_start:
        maskable[:1] = False
    masks, probabilities = [], []
    for _ in range(mc_num // mc_batch_size):
        p = (1.0 - eps) * stratified_times(mc_batch_size, generator) + eps
        uniforms = torch.rand(mc_batch_size, length, dtype=torch.float64, generator=generator)
        masks.append((uniforms < p[:, None]) & maskable)
        probabilities.append(p)
    masks, probabilities = torch.cat(masks), torch.cat(probabilities)
    used = masks.any(dim=1)
    masks, weights = masks[used], 1.0 / (probabilities[used] * mc_num)
    if not len(masks):  # nothing maskable (a lone EOS), or no draw masked anything
        return masks, weights
    unique, inverse = torch.unique(masks, dim=0, return_inverse=True)
    merged = torch.zeros(len(unique), dtype=torch.float64).index_add_(0, inverse, weights)
    return unique, merged


@torch.inference_mode()
def dream_loglikelihood(
    model: LogitsModel,
    prompts: TokenLists,
    continuations: TokenLists,
    *,
    mask_id: int,
    eos_id: int,
    mc_num: int = 128,
    mc_batch_size: int = 32,
    eps: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    pad_id: int | None = None,
) -> list[float]:
    """Dream's estimate of ``log p(continuation | prompt)`` for every pair (module doc).

    ``eos_id`` is appended to each continuation. ``mc_num`` draws in stratified mini-batches of
    ``mc_batch_size`` (Dream's 128 and 32); the rows of all pairs then share model calls of at
    most ``batch_size`` sequences, right-padded with ``pad_id`` (default ``mask_id``) behind an
    attention mask. Each pair's draws come from ``(seed, prompt, continuation)``, so a score
    does not depend on the batch, the order or the process.
    """
    extended = [list(c) + [eos_id] for c in continuations]
    pairs = _Pairs.build(prompts, extended, mask_id if pad_id is None else pad_id)
    plans = [
        dream_mask_plan(
            len(continuation), mc_num=mc_num, mc_batch_size=mc_batch_size,
            generator=seeded_generator(derive_seed(seed, prompt, continuation)),
            eps=eps, first_is_sequence_start=not prompt,
        )
        for prompt, continuation in zip(prompts, extended)
    ]
    return _score_mask_plans(model, pairs, plans, mask_id=mask_id, cfg_scale=0.0, batch_size=batch_size)
