"""Scoring continuations with a masked diffusion model: Monte Carlo ELBO and confidence scoring.

Both take lists of token-id lists (``prompts[i]``, ``continuations[i]`` form pair ``i``) and
batch the model calls of many pairs together (right padding plus an attention mask). Each
pair's random draws come from ``(seed, prompt, continuation)``, so a pair's score does not depend
on the batch it was computed in, its order, or the process that computed it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ._logits import LogitsModel, model_device, pad_batch, selected_logits
from .masking import (
    derive_seed,
    random_subsets,
    seeded_generator,
    stratified_mask_counts,
    tiled_subsets,
)

TokenLists = Sequence[Sequence[int]]
MASK_SAMPLING = ("llada", "antithetic", "balanced")


def elbo_mask_plan(
    length: int,
    *,
    mc_num: int,
    mc_batch_size: int,
    generator: torch.Generator,
    mask_sampling: str = "llada",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The masks and weights of the Monte Carlo ELBO for a continuation of ``length`` tokens.

    Returns bool ``masks [n, length]`` and float64 ``weights [n]`` such that the estimate is
    ``sum_r weights[r] * sum_{i masked in r} log p(c_i | prompt, c with mask r)``.

    ``mc_num`` draws in groups of ``mc_batch_size``; each group takes one random offset and
    spreads its mask counts ``l`` evenly over ``[1, length]``
    (:func:`~.masking.stratified_mask_counts`); a draw masking ``l`` positions has weight
    ``length / l / mc_num``. Which positions a draw masks depends on ``mask_sampling``:

    - ``"llada"``: an independent uniform subset per draw (LLaDA's estimator);
    - ``"antithetic"``: half of each group as above, the other half the complements of those
      subsets (a full mask is its own partner), so paired errors partly cancel;
    - ``"balanced"``: the group's subsets are consecutive windows around one random cyclic
      order of the positions (:func:`~.masking.tiled_subsets`), so each position is masked
      about equally often; the lowest variance of the three at equal cost in our measurements.

    Every draw keeps the exact distribution of LLaDA's draw, so all three are unbiased for
    the same bound. A one-token continuation needs a single draw: its bound is exact.
    Identical draws are merged (weights added), which changes no number and saves forward
    passes on short continuations.
    """
    if mask_sampling not in MASK_SAMPLING:
        raise ValueError(f"mask_sampling must be one of {MASK_SAMPLING}, got {mask_sampling!r}")
    if length < 1:
        raise ValueError("a continuation needs at least one token")
    if length == 1:
        return torch.ones(1, 1, dtype=torch.bool), torch.ones(1, dtype=torch.float64)
    group = min(mc_batch_size, mc_num)
    if mc_num < 1 or group < 1 or mc_num % group:
        raise ValueError(
            f"mc_num ({mc_num}) must be a positive multiple of mc_batch_size ({mc_batch_size})"
        )
    antithetic = mask_sampling == "antithetic"
    if antithetic and group % 2:
        raise ValueError(f"antithetic sampling pairs draws: mc_batch_size ({group}) must be even")
    subsets_of = tiled_subsets if mask_sampling == "balanced" else random_subsets
    draws = []
    for _ in range(mc_num // group):
        offset = int(torch.randint(1, length + 1, (), generator=generator))
        counts = stratified_mask_counts(length, group // 2 if antithetic else group, offset)
        subsets = subsets_of(counts, length, generator)
        if antithetic:
            full = subsets.all(dim=1, keepdim=True)
            subsets = torch.cat([subsets, torch.where(full, subsets, ~subsets)])
        draws.append(subsets)
    masks = torch.cat(draws)
    weights = length / masks.sum(dim=1).double() / mc_num
    unique, inverse = torch.unique(masks, dim=0, return_inverse=True)
    merged = torch.zeros(len(unique), dtype=torch.float64).index_add_(0, inverse, weights)
    return unique, merged


@dataclass
class _Pairs:
    """Prompt + continuation of each pair, right-padded into one CPU tensor."""

    ids: torch.Tensor  # [N, T]
    prompt_lengths: torch.Tensor  # [N]
    continuation_lengths: torch.Tensor  # [N]

    @classmethod
    def build(cls, prompts: TokenLists, continuations: TokenLists, pad_id: int) -> "_Pairs":
        if len(prompts) != len(continuations):
            raise ValueError(
                f"got {len(prompts)} prompts and {len(continuations)} continuations: "
                "give one continuation per prompt"
            )
        sequences = [list(p) + list(c) for p, c in zip(prompts, continuations)]
        ids, _ = pad_batch(sequences, pad_id=pad_id, side="right", device=torch.device("cpu"))
        return cls(
            ids=ids,
            prompt_lengths=torch.tensor([len(p) for p in prompts], dtype=torch.long),
            continuation_lengths=torch.tensor([len(c) for c in continuations], dtype=torch.long),
        )

    @property
    def total_lengths(self) -> torch.Tensor:
        return self.prompt_lengths + self.continuation_lengths

    def canvas(self, rows: torch.Tensor, device: torch.device):
        """Token ids, attention mask, prompt and continuation positions for pairs ``rows``."""
        total = self.total_lengths[rows]
        width = int(total.max())
        positions = torch.arange(width)[None, :]
        prompt_len = self.prompt_lengths[rows][:, None]
        in_prompt = positions < prompt_len
        in_continuation = (positions >= prompt_len) & (positions < total[:, None])
        ids = self.ids[rows, :width]
        attention = _attention_mask(total, width, device)
        return ids.to(device), attention, in_prompt.to(device), in_continuation.to(device)


def _attention_mask(totals: torch.Tensor, width: int, device: torch.device) -> torch.Tensor | None:
    """Right padding's attention mask: row ``i`` attends to its first ``totals[i]`` of ``width``
    columns; None when nothing is padded."""
    attention = (torch.arange(width)[None, :] < totals[:, None]).long()
    return None if bool(attention.all()) else attention.to(device)


def _chunks_longest_first(pairs: _Pairs, batch_size: int, cfg_scale: float) -> tuple[torch.Tensor, ...]:
    """Pair indices in chunks of one model call each (a guided pair is two sequences): longest
    continuations first, so a chunk's finished pairs form a tail; then longest sequences, to keep
    padding low within a call."""
    key = pairs.continuation_lengths * (pairs.ids.shape[1] + 1) + pairs.total_lengths
    pairs_per_call = max(1, batch_size // 2 if cfg_scale > 0 else batch_size)
    return torch.argsort(key, descending=True, stable=True).split(pairs_per_call)


def _masked_logprob_sums(
    model: LogitsModel,
    pairs: _Pairs,
    row_pair: torch.Tensor,
    row_masks: torch.Tensor,
    *,
    mask_id: int,
    cfg_scale: float,
    batch_size: int,
    model_dtype: bool = False,
) -> torch.Tensor:
    """For each row (a pair index and a continuation mask), the sum of log-probabilities of the
    masked continuation tokens given the rest, float64 ``[n_rows]``. Each log-probability is
    taken in float32, or with ``model_dtype`` in the logits' own dtype (guidance included) as
    LLaDA's cross-entropy takes it; the sums are float64 either way."""
    device = model_device(model)
    sums = torch.zeros(len(row_pair), dtype=torch.float64)
    order = torch.argsort(pairs.total_lengths[row_pair], descending=True, stable=True)
    rows_per_call = max(1, batch_size // 2 if cfg_scale > 0 else batch_size)
    for chunk in order.split(rows_per_call):
        ids, attention, in_prompt, in_continuation = pairs.canvas(row_pair[chunk], device)
        offsets = torch.arange(ids.shape[1])[None, :] - pairs.prompt_lengths[row_pair[chunk]][:, None]
        gathered = row_masks[chunk].gather(1, offsets.clamp(0, row_masks.shape[1] - 1))
        masked = in_continuation & gathered.to(device)
        noisy = ids.masked_fill(masked, mask_id)
        uncond = noisy.masked_fill(in_prompt, mask_id) if cfg_scale > 0 else None
        logits = selected_logits(
            model, noisy, attention, masked, cfg_scale=cfg_scale, uncond_ids=uncond, model_dtype=model_dtype
        )
        token_logprobs = torch.log_softmax(logits, dim=-1).gather(1, ids[masked][:, None])[:, 0]
        row_of_token = masked.nonzero()[:, 0].cpu()
        chunk_sums = torch.zeros(len(chunk), dtype=torch.float64)
        chunk_sums.index_add_(0, row_of_token, token_logprobs.double().cpu())
        sums[chunk] = chunk_sums
    return sums


@torch.inference_mode()
def elbo_loglikelihood(
    model: LogitsModel,
    prompts: TokenLists,
    continuations: TokenLists,
    *,
    mask_id: int,
    mc_num: int = 128,
    mc_batch_size: int = 32,
    cfg_scale: float = 0.0,
    seed: int = 0,
    mask_sampling: str = "llada",
    batch_size: int = 32,
    pad_id: int | None = None,
    official_numerics: bool = False,
) -> list[float]:
    """LLaDA's Monte Carlo lower bound on ``log p(continuation | prompt)`` for every pair.

    ``E_l E_mask[(L / l) * sum_{i masked} log p(c_i | prompt, c masked)]``: ``l`` of the
    continuation's ``L`` tokens are masked, the prompt never is. The draws follow
    :func:`elbo_mask_plan` (``mc_num`` draws, stratified in groups of ``mc_batch_size``;
    ``mask_sampling`` "llada" (LLaDA's), "antithetic" or "balanced", the lower-variance
    designs); a one-token continuation is exact in one pass; an empty
    continuation scores 0. ``cfg_scale > 0`` applies unsupervised classifier-free guidance (the
    unconditional copy has the prompt replaced by mask tokens). Rows of all pairs share model
    calls of at most ``batch_size`` sequences (guidance copies included); padded positions hold
    ``pad_id`` (default: ``mask_id``) and are hidden by the attention mask. The same ``seed``
    gives the same numbers, whatever the batch.

    ``official_numerics``: each token's log-probability (and the guidance) in the logits' own
    dtype, as LLaDA's ``get_loglikelihood`` takes its cross-entropy (in bfloat16 each term is
    rounded to 8 significant bits); the weighted sum stays float64, where LLaDA's sums a
    mini-batch in float32 (a difference of float32 rounding only). Default: float32
    log-probabilities of the upcast logits.
    """
    pairs = _Pairs.build(prompts, continuations, mask_id if pad_id is None else pad_id)
    plans = [
        elbo_mask_plan(
            len(continuation), mc_num=mc_num, mc_batch_size=mc_batch_size,
            generator=seeded_generator(derive_seed(seed, prompt, continuation)),
            mask_sampling=mask_sampling,
        ) if continuation else None
        for prompt, continuation in zip(prompts, continuations)
    ]
    return _score_mask_plans(model, pairs, plans, mask_id=mask_id, cfg_scale=cfg_scale, batch_size=batch_size,
                             model_dtype=official_numerics)


def _score_mask_plans(
    model: LogitsModel,
    pairs: _Pairs,
    plans: Sequence[tuple[torch.Tensor, torch.Tensor] | None],
    *,
    mask_id: int,
    cfg_scale: float,
    batch_size: int,
    model_dtype: bool = False,
) -> list[float]:
    """Each pair's ``sum_r weights[r] * sum_{i masked in r} log p(c_i | rest)`` from its plan
    ``(masks [n, continuation length], weights [n])`` (``None``: scores 0); the rows of all
    pairs share model calls. ``model_dtype``: as :func:`_masked_logprob_sums`."""
    width = int(pairs.continuation_lengths.max()) if len(pairs.ids) else 0
    row_pair, row_masks, row_weights = [], [], []
    for index, plan in enumerate(plans):
        if plan is None:
            continue
        masks, weights = plan
        row_pair.append(torch.full((len(masks),), index, dtype=torch.long))
        row_masks.append(torch.nn.functional.pad(masks, (0, width - masks.shape[1])))
        row_weights.append(weights)
    scores = torch.zeros(len(pairs.ids), dtype=torch.float64)
    pair_of_row = torch.cat(row_pair) if row_pair else torch.zeros(0, dtype=torch.long)
    if len(pair_of_row):
        sums = _masked_logprob_sums(
            model, pairs, pair_of_row, torch.cat(row_masks),
            mask_id=mask_id, cfg_scale=cfg_scale, batch_size=batch_size, model_dtype=model_dtype,
        )
        scores.index_add_(0, pair_of_row, torch.cat(row_weights) * sums)
    return scores.tolist()


@torch.inference_mode()
def confidence_score(
    model: LogitsModel,
    prompts: TokenLists,
    continuations: TokenLists,
    *,
    mask_id: int,
    cfg_scale: float = 0.0,
    batch_size: int = 32,
    return_greedy: bool = False,
    pad_id: int | None = None,
) -> list[float] | list[tuple[float, bool]]:
    """iLLaDA's confidence score of each continuation given its prompt.

    All ``L`` continuation positions start masked. ``L`` times: run the model, take the
    still-masked position where the continuation's own token is most probable, add that
    log-probability to the score and reveal the token there. Deterministic; ``L`` forward passes
    per pair, with up to ``batch_size`` pairs (of all questions and options) per call.

    With ``return_greedy=True`` each result is ``(score, is_greedy)`` as lm-eval's
    ``loglikelihood`` wants: ``is_greedy`` says the model's own top token equalled the
    continuation's token at every reveal. ``cfg_scale`` guides as in :func:`elbo_loglikelihood`.
    An empty continuation scores ``(0.0, True)``.
    """
    pairs = _Pairs.build(prompts, continuations, mask_id if pad_id is None else pad_id)
    device = model_device(model)
    scores = torch.zeros(len(pairs.ids), dtype=torch.float64)
    greedy = torch.ones(len(pairs.ids), dtype=torch.bool)
    for chunk in _chunks_longest_first(pairs, batch_size, cfg_scale):
        chunk_scores, chunk_greedy = _reveal_by_confidence(
            model, pairs, chunk, device, mask_id=mask_id, cfg_scale=cfg_scale
        )
        scores[chunk], greedy[chunk] = chunk_scores, chunk_greedy
    if return_greedy:
        return list(zip(scores.tolist(), greedy.tolist()))
    return scores.tolist()


def _reveal_by_confidence(
    model: LogitsModel,
    pairs: _Pairs,
    chunk: torch.Tensor,
    device: torch.device,
    *,
    mask_id: int,
    cfg_scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence scores and greedy flags of pairs ``chunk`` (sorted longest continuation first)."""
    ids, _, in_prompt, in_continuation = pairs.canvas(chunk, device)
    lengths = pairs.continuation_lengths[chunk]
    totals = pairs.total_lengths[chunk]
    canvas = ids.masked_fill(in_continuation, mask_id)
    still_masked = in_continuation.clone()
    scores = torch.zeros(len(chunk), dtype=torch.float64, device=device)
    greedy = torch.ones(len(chunk), dtype=torch.bool, device=device)
    for step in range(int(lengths.max()) if len(chunk) else 0):
        active = int((lengths > step).sum())  # finished pairs form the tail
        width = int(totals[:active].max())
        rows = torch.arange(active, device=device)
        attention = _attention_mask(totals[:active], width, device)
        current, select = canvas[:active, :width], still_masked[:active, :width]
        uncond = current.masked_fill(in_prompt[:active, :width], mask_id) if cfg_scale > 0 else None
        logits = selected_logits(
            model, current, attention, select, cfg_scale=cfg_scale, uncond_ids=uncond
        )
        targets = ids[:active, :width][select]
        own = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]
        candidate = torch.full(select.shape, -torch.inf, device=device)
        candidate[select] = own
        top_matches = torch.zeros_like(select)
        top_matches[select] = logits.argmax(dim=-1) == targets
        best = candidate.argmax(dim=1)
        scores[:active] += candidate[rows, best].double()
        greedy[:active] &= top_matches[rows, best]
        canvas[rows, best] = ids[rows, best]
        still_masked[rows, best] = False
    return scores.cpu(), greedy.cpu()
