"""LLaDA's sampler: low-confidence (or random) remasking over semi-autoregressive blocks.

The canvas is the prompt followed by mask tokens. ``gen_length`` is cut into blocks of
``block_length`` decoded left to right; each block gets ``steps // num_blocks`` steps and
reveals ``n // s`` tokens per step (the first ``n % s`` steps one more). Each step runs the
model on the whole canvas, proposes ``x0 = argmax`` (after float64 Gumbel noise when
``temperature > 0``), scores each still-masked position of the current block by the
probability of its proposal (``"low_confidence"``) or a uniform random number (``"random"``),
and reveals the most confident ones. Only the logits read are computed: those of the block's
still-masked positions (for a network that takes ``logits_at``), and only for the rows whose
block still has masked positions.

Batches are left-padded with an attention mask; each prompt draws its random numbers from its
own generator, so its output does not depend on the batch it ran in.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ._logits import (
    LogitsModel, apply_guidance, call_logits, model_device, pad_batch, select_block, with_unconditional,
)
from .kv_cache import BlockKVCache
from .masking import prompt_seeds, seeded_generator

REMASKING = ("low_confidence", "random")


@dataclass
class GenerateOutput:
    """What :func:`generate` returns, one entry per prompt in ``tokens``/``stopped``/``nfe_per_sequence``."""

    # generated tokens only, cut before the first EOS or stop sequence (uncut with keep_text_after_eos)
    tokens: list[list[int]]
    nfe: int  # model calls made (a guided call on the doubled batch counts once)
    nfe_per_sequence: list[int]  # model calls each prompt took part in
    stopped: list[bool]  # True where an EOS or a stop sequence ended the output


def transfer_schedule(num_masked: int, steps: int) -> list[int]:
    """Tokens revealed per step: ``num_masked // steps``, the first ``num_masked % steps`` one more."""
    base, extra = divmod(num_masked, steps)
    return [base + 1] * extra + [base] * (steps - extra)


def _as_id_tuple(ids: int | Sequence[int] | None) -> tuple[int, ...]:
    if ids is None:
        return ()
    return (int(ids),) if isinstance(ids, int) else tuple(int(i) for i in ids)


def _first_stop(
    tokens: list[int], eos_ids: tuple[int, ...], stops: list[list[int]], start: int
) -> int | None:
    """Index where the output ends (an EOS or the first token of a stop sequence) in
    ``tokens[start:]``, ``None`` if neither occurs there."""
    for index in range(start, len(tokens)):
        if tokens[index] in eos_ids:
            return index
        for stop in stops:
            if tokens[index : index + len(stop)] == stop:
                return index
    return None


def _ended(
    tokens: list[int], ends: tuple[int, ...], stops: list[list[int]], start: int, uncut: bool
) -> tuple[list[int], bool]:
    """The output in ``tokens`` and whether an end token or a stop sequence (searched from
    ``start``) ended it; ``uncut`` keeps what follows (the caller cuts the text instead)."""
    cut = _first_stop(tokens, ends, stops, start)
    return (tokens if uncut or cut is None else tokens[:cut]), cut is not None


class _Rows:
    """The prompts still being decoded: canvas, attention mask, random generators, counters."""

    def __init__(self, prompts, *, pad_id, mask_id, seeds, device):
        self.device = device
        ids, attention = pad_batch(prompts, pad_id=pad_id, side="left", device=device)
        self.prompt_width = ids.shape[1]
        self.canvas = ids
        self.attention = attention
        self.index = list(range(len(prompts)))
        self.seeds = seeds
        self.generators: list[torch.Generator] | None = None
        self.nfe = [0] * len(prompts)
        self.mask_id = mask_id

    def __len__(self) -> int:
        return len(self.index)

    def append_masks(self, count: int) -> None:
        masks = torch.full((len(self), count), self.mask_id, dtype=torch.long, device=self.device)
        self.canvas = torch.cat([self.canvas, masks], dim=1)
        if self.attention is not None:
            ones = torch.ones((len(self), count), dtype=self.attention.dtype, device=self.device)
            self.attention = torch.cat([self.attention, ones], dim=1)

    def random_generators(self) -> list[torch.Generator]:
        if self.generators is None:
            self.generators = [seeded_generator(self.seeds[i], self.device) for i in self.index]
        return self.generators

    def uncond_canvas(self) -> torch.Tensor:
        """The canvas with the prompt (not its padding) replaced by mask tokens."""
        prompt = torch.zeros_like(self.canvas, dtype=torch.bool)
        real = 1 if self.attention is None else self.attention[:, : self.prompt_width].bool()
        prompt[:, : self.prompt_width] = real
        return self.canvas.masked_fill(prompt, self.mask_id)

    def keep(self, keep: list[bool]) -> None:
        """Drop finished rows, then padding columns no remaining row needs."""
        rows = torch.tensor(keep, device=self.device)
        self.canvas = self.canvas[rows]
        self.index = [i for i, k in zip(self.index, keep) if k]
        if self.generators is not None:
            self.generators = [g for g, k in zip(self.generators, keep) if k]
        if self.attention is None:
            return
        self.attention = self.attention[rows]
        unused = int((self.attention.sum(dim=0) == 0).long().cumprod(dim=0).sum())
        self.canvas, self.attention = self.canvas[:, unused:], self.attention[:, unused:]
        self.prompt_width -= unused
        if bool(self.attention.all()):
            self.attention = None


def _propose(
    logits: torch.Tensor,
    read: torch.Tensor,
    generators: list[torch.Generator] | None,
    *,
    mask_id: int,
    temperature: float,
    remasking: str,
    never_proposed: Sequence[int] = (),
    zero_confidence: Sequence[int] = (),
    official_numerics: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Proposed tokens and confidences ``[B, block]`` from the float32 logits ``[n, V]`` of the
    positions where ``read [B, block]`` is true (row-major); row ``i`` draws its random numbers
    from ``generators[i]``. Elsewhere the proposal is ``mask_id`` and the confidence 0.

    Greedy proposals are the argmax of the logits as they are (an upcast cannot change it).
    Sampling is Gumbel-max in float64 as in LLaDA (``argmax exp(l) / (-log u)^T``, taken in log
    space so large logits cannot overflow), one row at a time, with noise drawn for the whole
    block so a position's draw does not depend on which others are still masked. The mask token
    is never proposed (an undertrained model may rank it first, and a "revealed" mask token
    means nothing); confidences keep LLaDA's softmax over the full vocabulary, so nothing
    changes wherever LLaDA would not have proposed the mask token. The softmax's normaliser is
    taken in float32: only the proposal's probability is float64.

    LLaDA's options: the ``never_proposed`` ids get a ``-inf`` logit before the proposal
    (``logits_eos_inf``); the ``zero_confidence`` ids get one after it, so a position proposing
    one of them has confidence 0 and the others' softmax leaves them out (``confidence_eos_eot_inf``).
    ``official_numerics``: the softmax in the logits' own dtype, as LLaDA's code takes it (in
    bfloat16 its rounding makes ties, which the reveal order then breaks by position).
    """
    if never_proposed:
        logits = logits.index_fill(-1, torch.tensor(never_proposed, device=logits.device), -torch.inf)
    x0 = logits.argmax(dim=-1)
    if bool((x0 == mask_id).any()):
        x0 = _without_mask_token(logits, mask_id).argmax(dim=-1)
    confidence = None
    if temperature > 0 or remasking == "random":
        confidence = torch.zeros(x0.shape, dtype=torch.float64, device=logits.device)
        first = 0
        for row, (generator, count) in enumerate(zip(generators, read.sum(dim=1).tolist())):
            here = slice(first, first + count)  # this row's positions among the logits
            first += count
            if temperature > 0:
                uniform = torch.rand(
                    read.shape[1], logits.shape[1], dtype=torch.float64, device=logits.device,
                    generator=generator,
                )[read[row]]
                noisy = _without_mask_token(logits[here].double(), mask_id)
                x0[here] = (noisy - temperature * torch.log(-torch.log(uniform))).argmax(dim=-1)
            if remasking == "random":
                confidence[here] = torch.rand(
                    read.shape[1], dtype=torch.float64, device=logits.device, generator=generator
                )[read[row]]
    if remasking == "low_confidence":
        if zero_confidence:
            logits = logits.index_fill(-1, torch.tensor(zero_confidence, device=logits.device), -torch.inf)
        if official_numerics:  # kept in the logits' dtype: the reveal order then meets its ties as LLaDA's does
            confidence = torch.softmax(logits, dim=-1).gather(-1, x0[:, None])[:, 0]
        else:
            log_norm = torch.logsumexp(logits, dim=-1)
            confidence = torch.exp(logits.gather(-1, x0[:, None])[:, 0].double() - log_norm.double())
    proposals = torch.full(read.shape, mask_id, dtype=x0.dtype, device=x0.device)
    proposals[read] = x0
    confidences = torch.zeros(read.shape, dtype=confidence.dtype, device=x0.device)
    confidences[read] = confidence
    return proposals, confidences


def _without_mask_token(logits: torch.Tensor, mask_id: int) -> torch.Tensor:
    """A copy of ``logits`` with the mask token at ``-inf``."""
    return logits.index_fill(-1, torch.tensor([mask_id], device=logits.device), -torch.inf)


def _select_transfers(
    confidence: torch.Tensor, still_masked: torch.Tensor, count: int | None, threshold: float | None,
    start: int, width: int,
) -> torch.Tensor:
    """Bool ``[B, block]``: the positions to reveal this step (the block starts at canvas column
    ``start`` of ``width``).

    Fixed schedule: the ``count`` most confident masked positions of each row, chosen as LLaDA's
    code chooses them: ``torch.topk`` over the row's whole canvas, ``-inf`` outside the block,
    so that even ties (equal confidences, common in bfloat16) are broken as there. Threshold:
    every masked position whose confidence exceeds ``threshold``, and always the most confident one.
    """
    confidence = confidence.masked_fill(~still_masked, -torch.inf)
    transfer = torch.zeros_like(still_masked)
    if threshold is None:
        canvas = confidence.new_full((len(confidence), width), -torch.inf)
        canvas[:, start : start + confidence.shape[1]] = confidence
        for row in range(len(canvas)):
            transfer[row, torch.topk(canvas[row], count).indices - start] = True
    else:
        transfer = confidence > threshold
        transfer.scatter_(1, confidence.argmax(dim=1, keepdim=True), True)
    return transfer & still_masked


@torch.inference_mode()
def generate(
    model: LogitsModel,
    prompts: Sequence[Sequence[int]],
    *,
    mask_id: int,
    gen_length: int,
    block_length: int,
    steps: int,
    temperature: float = 0.0,
    remasking: str = "low_confidence",
    cfg_scale: float = 0.0,
    eos_id: int | Sequence[int] | None = None,
    variable_length: bool = False,
    logits_eos_inf: bool = False,
    confidence_eos_eot_inf: bool = False,
    official_numerics: bool = False,
    keep_text_after_eos: bool = False,
    stop: Sequence[Sequence[int]] | None = None,
    seed: int | Sequence[int] = 0,
    threshold: float | None = None,
    stop_early: bool = True,
    pad_id: int | None = None,
    kv_cache: str | None = None,
) -> GenerateOutput:
    """Generate up to ``gen_length`` tokens after each prompt with LLaDA's sampler.

    Args:
        model: logits callable ``model(input_ids, attention_mask)``.
        prompts: token-id lists; batched together with left padding (``pad_id``, default
            ``mask_id``, hidden by the attention mask).
        gen_length, block_length, steps: length budget, block size (must divide
            ``gen_length``) and total steps over the whole budget (must be a multiple of the
            number of blocks); each block gets ``steps // (gen_length // block_length)`` steps,
            in both fixed and variable-length mode, so a variable-length run that uses the whole
            budget takes exactly the steps of the fixed-length run.
        temperature: 0 is greedy; above 0 samples with float64 Gumbel noise.
        remasking: ``"low_confidence"`` or ``"random"``.
        cfg_scale: unsupervised classifier-free guidance (prompt replaced by mask tokens in the
            unconditional copy; both copies go through one model call).
        eos_id: end-of-sequence id, or several (e.g. EOS and end-of-turn): outputs are cut before
            the first one (not with ``keep_text_after_eos``); they also end variable-length decoding.
        variable_length: iLLaDA's mode: the canvas holds only the blocks decoded so far plus the
            current one; a prompt stops once a decoded block holds an EOS or completes a stop
            sequence, or when ``gen_length`` is reached.
        logits_eos_inf: LLaDA's option: the first of ``eos_id`` (the tokenizer's EOS) is never
            proposed, so the canvas fills with content.
        confidence_eos_eot_inf: LLaDA's option: every ``eos_id`` (EOS and end-of-turn) gets
            probability 0 after the proposal is taken, so a position proposing one has confidence
            0 (revealed last in its block, ties by position) and the others' softmax leaves them out.
        official_numerics: confidences (and guidance) in the model's dtype, as LLaDA's code takes
            them, instead of float32/float64; matters for bfloat16 models.
        keep_text_after_eos: LLaDA's evaluation (fixed length only): an EOS neither ends an output
            nor its decoding, and outputs are not cut: each is the whole canvas, or, where a stop
            sequence ended decoding early (``stop_early``), the canvas up to the end of that block,
            so the caller can cut the decoded text at its stop strings as LLaDA's code does.
        stop: stop sequences as token-id lists; outputs are cut before the first occurrence.
        seed: one int (prompt ``i`` uses a seed derived from ``(seed, i)``) or one seed per prompt
            (lets a caller keep results independent of how it splits its requests).
        threshold: Fast-dLLM parallel decoding: instead of the fixed schedule, each step reveals
            every masked position of the block whose confidence is strictly above ``threshold``,
            and at least the most confident one, until the block is full (``steps`` is then not
            used). ``threshold=1.0`` reveals one token per step.
        stop_early: in fixed-length mode, stop decoding a prompt once a completed block holds
            an EOS or a stop sequence. Earlier blocks never change after they are decoded, so
            the output is already final: the tokens are identical and model calls are saved.
            ``False`` runs every block, as LLaDA's code does (to count its calls).
        kv_cache: ``None`` (exact: every step runs the whole canvas), or Fast-dLLM's approximate
            ``"prefix"`` / ``"dual"`` cache (:mod:`.kv_cache`): a block's first step runs the
            whole canvas, its later steps only the block (and, for ``"prefix"``, what follows
            it). Needs a network that takes ``past_key_values`` (``ILLaDAForMaskedLM``).

    Returns:
        :class:`GenerateOutput`. ``nfe`` counts model calls; a step in which no prompt has a
        masked position left in its block is skipped, not run.
    """
    eos_ids = _as_id_tuple(eos_id)
    stops = [list(s) for s in (stop or [])]
    num_blocks = _check_generate_args(
        gen_length, block_length, steps, temperature, remasking, threshold, stops,
        eos_ids, variable_length, logits_eos_inf or confidence_eos_eot_inf, keep_text_after_eos,
    )
    ends = () if keep_text_after_eos else eos_ids  # the tokens that end an output
    cache = BlockKVCache(kv_cache) if kv_cache is not None else None
    seeds = prompt_seeds(seed, len(prompts))
    if not prompts:
        return GenerateOutput(tokens=[], nfe=0, nfe_per_sequence=[], stopped=[])
    device = model_device(model)
    rows = _Rows(prompts, pad_id=mask_id if pad_id is None else pad_id, mask_id=mask_id,
                 seeds=seeds, device=device)
    outputs: list[list[int] | None] = [None] * len(prompts)
    stopped = [False] * len(prompts)
    schedule = transfer_schedule(block_length, steps // num_blocks) if threshold is None else None
    rows.append_masks(block_length if variable_length else gen_length)
    nfe = 0
    max_stop = max((len(s) for s in stops), default=1)
    needs_generators = temperature > 0 or remasking == "random"

    for block in range(num_blocks):
        if variable_length and block > 0:
            rows.append_masks(block_length)
        start = rows.prompt_width + block * block_length
        still_masked = torch.ones((len(rows), block_length), dtype=torch.bool, device=device)
        if cache is not None:
            cache.forget()
        step = 0
        while bool(still_masked.any()):
            if threshold is None and step == len(schedule):
                break
            # rows whose block is finished (threshold decoding) leave the forward; the logits
            # of the still-masked positions are the only ones read
            active = still_masked.any(dim=1).nonzero()[:, 0]
            subset = None if len(active) == len(rows) else active
            read = still_masked[active]
            logits = _block_logits(model, rows, subset, start, read, cfg_scale, cache, official_numerics)
            nfe += 1
            for i in active.tolist():
                rows.nfe[rows.index[i]] += 1
            generators = None
            if needs_generators:
                generators = [rows.random_generators()[i] for i in active.tolist()]
            x0, confidence = _propose(
                logits, read, generators, mask_id=mask_id, temperature=temperature,
                remasking=remasking, never_proposed=eos_ids[:1] if logits_eos_inf else (),
                zero_confidence=eos_ids if confidence_eos_eot_inf else (), official_numerics=official_numerics,
            )
            transfer = _select_transfers(
                confidence, read, None if schedule is None else schedule[step], threshold,
                start, rows.canvas.shape[1],
            )
            block_view = rows.canvas[active, start : start + block_length]
            rows.canvas[active, start : start + block_length] = torch.where(transfer, x0, block_view)
            still_masked[active] &= ~transfer
            step += 1

        if (variable_length or stop_early) and (ends or stops):
            _finish_stopped_rows(
                rows, outputs, stopped, ends, stops, keep_text_after_eos,
                search_from=max(0, block * block_length - max_stop + 1),
                end=(block + 1) * block_length,
            )
            if not len(rows):
                break

    for i, original in enumerate(rows.index):
        generated = rows.canvas[i, rows.prompt_width :].tolist()
        outputs[original], stopped[original] = _ended(generated, ends, stops, 0, keep_text_after_eos)
    return GenerateOutput(
        tokens=[list(o) for o in outputs], nfe=nfe, nfe_per_sequence=rows.nfe, stopped=stopped
    )


def _block_logits(
    model: LogitsModel, rows: _Rows, subset: torch.Tensor | None, start: int, read: torch.Tensor,
    cfg_scale: float, cache: BlockKVCache | None, model_dtype: bool = False,
) -> torch.Tensor:
    """Float32 logits ``[n, V]`` (in the model's own dtype with ``model_dtype``) of the current
    block's positions where ``read [B, block]`` is true, for the rows ``subset`` (all when
    ``None``); guided when ``cfg_scale > 0`` (the conditional and unconditional canvases share
    one model call). Only those positions are projected."""
    ids, attention = rows.canvas, rows.attention
    if cfg_scale > 0:
        ids, attention = with_unconditional(ids, attention, rows.uncond_canvas())
        read = torch.cat([read, read])
    if subset is not None:
        # guidance: a row's unconditional copy sits one batch further
        subset = subset if cfg_scale <= 0 else torch.cat([subset, subset + len(rows)])
        ids = ids[subset]
        attention = None if attention is None else attention[subset]
    if cache is None:
        logits = call_logits(model, ids, attention, select_block(ids, start, read))
    else:
        logits = cache.block_logits(model, ids, attention, start, read, subset)
    logits = logits if model_dtype else logits.float()
    return apply_guidance(logits, cfg_scale) if cfg_scale > 0 else logits


def _finish_stopped_rows(rows, outputs, stopped, ends, stops, uncut, *, search_from, end) -> None:
    """Record and drop rows whose decoded blocks hold an end token or a whole stop sequence."""
    keep = []
    for i, original in enumerate(rows.index):
        generated = rows.canvas[i, rows.prompt_width : rows.prompt_width + end].tolist()
        output, ended = _ended(generated, ends, stops, search_from, uncut)
        if ended:
            outputs[original], stopped[original] = output, True
        keep.append(outputs[original] is None)
    if not all(keep):
        rows.keep(keep)


def _check_generate_args(
    gen_length, block_length, steps, temperature, remasking, threshold, stops,
    eos_ids, variable_length, eos_options, keep_text_after_eos,
) -> int:
    if gen_length < 1 or block_length < 1 or gen_length % block_length:
        raise ValueError(
            f"block_length ({block_length}) must be positive and divide gen_length ({gen_length})"
        )
    num_blocks = gen_length // block_length
    if threshold is None and (steps < num_blocks or steps % num_blocks):
        raise ValueError(
            f"steps ({steps}) must be a positive multiple of the number of blocks ({num_blocks} = "
            f"gen_length {gen_length} / block_length {block_length})"
        )
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if remasking not in REMASKING:
        raise ValueError(f"remasking must be one of {REMASKING}, got {remasking!r}")
    if any(not s for s in stops):
        raise ValueError("stop sequences must be non-empty token-id lists")
    if variable_length and not (eos_ids or stops):
        raise ValueError("variable_length needs eos_id or stop sequences to know when to stop")
    if eos_options and not eos_ids:
        raise ValueError("logits_eos_inf and confidence_eos_eot_inf need eos_id")
    if keep_text_after_eos and variable_length:
        raise ValueError("keep_text_after_eos needs fixed length: variable_length stops decoding at the first EOS")
    return num_blocks
