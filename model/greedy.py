"""LLaDA's ``is_greedy``: does free greedy decoding reproduce the continuation?

lm-eval's ``loglikelihood`` returns, with each score, whether the continuation is the model's
greedy output. Two rules for a masked diffusion model:

- the reveal rule (:func:`~.likelihood.confidence_score` with ``return_greedy=True``): the
  continuation's own tokens are revealed, most probable first, and each must be the model's top
  token where it is revealed;
- LLaDA's rule (:func:`llada_is_greedy`, its ``suffix_greedy_prediction``): the model decodes
  freely, one token per step, and writes its own proposals; the flag says the result is the
  continuation.

They differ where the model's most confident proposal is wrong although the continuation's
tokens would each be top in the continuation's own order (then only the reveal rule says yes).
"""
from __future__ import annotations

import torch

from ._logits import LogitsModel, model_device, selected_logits
from .likelihood import TokenLists, _attention_mask, _chunks_longest_first, _Pairs


@torch.inference_mode()
def llada_is_greedy(
    model: LogitsModel,
    prompts: TokenLists,
    continuations: TokenLists,
    *,
    mask_id: int,
    cfg_scale: float = 0.0,
    batch_size: int = 32,
    pad_id: int | None = None,
    official_numerics: bool = False,
) -> list[bool]:
    """LLaDA's ``is_greedy`` of every pair (its ``suffix_greedy_prediction``).

    The ``L`` continuation positions start masked; ``L`` times the model proposes its top token
    at every masked position and only the most confident proposal (its float32 softmax
    probability) is written: the model's own token, not the continuation's. The flag says the
    canvas equals the continuation at the end. Ties between positions are broken as LLaDA's code
    breaks them, by ``torch.sort`` of the row's masked confidences (on the CPU not always the
    leftmost). A written token is never changed, so a pair leaves the batch at its first wrong
    token; up to ``batch_size`` pairs share a model call (guidance copies included).
    ``cfg_scale`` guides as in :func:`~.likelihood.elbo_loglikelihood`, in float32, or with
    ``official_numerics`` in the logits' own dtype as LLaDA's code does. An empty continuation
    is greedy.
    """
    pairs = _Pairs.build(prompts, continuations, mask_id if pad_id is None else pad_id)
    device = model_device(model)
    flags = torch.ones(len(pairs.ids), dtype=torch.bool)
    for chunk in _chunks_longest_first(pairs, batch_size, cfg_scale):
        flags[chunk] = _decode_greedily(
            model, pairs, chunk, device, mask_id=mask_id, cfg_scale=cfg_scale, model_dtype=official_numerics
        )
    return flags.tolist()


def _decode_greedily(
    model: LogitsModel,
    pairs: _Pairs,
    chunk: torch.Tensor,
    device: torch.device,
    *,
    mask_id: int,
    cfg_scale: float,
    model_dtype: bool,
) -> torch.Tensor:
    """LLaDA's greedy flags of pairs ``chunk``, bool ``[len(chunk)]``."""
    ids, _, in_prompt, in_continuation = pairs.canvas(chunk, device)
    lengths, totals = pairs.continuation_lengths[chunk], pairs.total_lengths[chunk]
    canvas = ids.masked_fill(in_continuation, mask_id)
    wrong = torch.zeros(len(chunk), dtype=torch.bool)
    for step in range(int(lengths.max()) if len(chunk) else 0):
        rows = ((lengths > step) & ~wrong).nonzero()[:, 0]
        if not len(rows):
            break
        width = int(totals[rows].max())
        attention = _attention_mask(totals[rows], width, device)
        on_device = rows.to(device)
        current = canvas[on_device, :width]
        # still masked = holding the mask token, as in LLaDA's code (a proposed mask token stays one)
        select = in_continuation[on_device, :width] & (current == mask_id)
        uncond = current.masked_fill(in_prompt[on_device, :width], mask_id) if cfg_scale > 0 else None
        logits = selected_logits(
            model, current, attention, select, cfg_scale=cfg_scale, uncond_ids=uncond, model_dtype=model_dtype
        )
        proposals = logits.argmax(dim=-1)
        confidence = torch.softmax(logits.float(), dim=-1).gather(1, proposals[:, None])[:, 0]
        counts = select.sum(dim=1).tolist()
        columns = select.nonzero()[:, 1]  # row-major, as the logits
        for row, (row_confidence, row_proposals, row_columns) in enumerate(
            zip(confidence.split(counts), proposals.split(counts), columns.split(counts))
        ):
            best = torch.sort(row_confidence, descending=True).indices[0]
            current[row, row_columns[best]] = row_proposals[best]
        canvas[on_device, :width] = current
        written = in_continuation[on_device, :width] & (current != mask_id)
        wrong[rows] = (written & (current != ids[on_device, :width])).any(dim=1).cpu()
    return ((canvas == ids) | ~in_continuation).all(dim=1).cpu()
