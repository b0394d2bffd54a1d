"""Dream's sampler (its ``diffusion_generate``): one masked canvas revealed over a time grid.

The canvas is the prompt followed by ``max_new_tokens`` mask tokens, decoded as a whole (no
blocks). Step ``i`` of ``steps`` goes from time ``t = grid[i]`` to ``s = grid[i + 1]`` on
``linspace(1, eps, steps + 1)``; a masked position is revealed with probability
``1 - s / t`` (all of them at the last step). Proposals come from the logits after
``temperature``, top-p and top-k (:func:`dream_proposals`); which positions are revealed
depends on ``alg``:

- ``"origin"``: each masked position independently with probability ``1 - s / t``
  (the original absorbing-diffusion reverse process);
- ``"maskgit_plus"`` / ``"topk_margin"`` / ``"entropy"``: the ``int(n * (1 - s / t))`` masked
  positions (``n`` still masked) of highest confidence: the proposal's probability, the top-1
  minus top-2 probability, or the negative entropy of the position's distribution;
  ``alg_temp > 0`` draws them instead, without replacement, with probabilities
  ``softmax(confidence / alg_temp)``.

As in Dream's code the mask token may be proposed (a position revealed as the mask token is
masked again at the next step) and the count uses float32 arithmetic. Each prompt draws its
random numbers from its own generator, so its output does not depend on the batch; batches
are left-padded with an attention mask.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ._logits import LogitsModel, call_logits, model_device
from .masking import prompt_seeds
from .sampler import GenerateOutput, _as_id_tuple, _first_stop, _Rows

DREAM_ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")


def time_grid(steps: int, eps: float) -> torch.Tensor:
    """``linspace(1, eps, steps + 1)`` in float32, Dream's time grid."""
    return torch.linspace(1.0, eps, steps + 1, dtype=torch.float32)


def reveal_count(num_masked: int, t: torch.Tensor, s: torch.Tensor, last: bool) -> int:
    """How many of ``num_masked`` positions a confidence-ordered step from ``t`` to ``s``
    reveals: ``int(n * (1 - s / t))`` in float32 as Dream computes it; all at the last step."""
    if last:
        return num_masked
    return int(torch.tensor(float(num_masked), dtype=torch.float32) * (1 - s / t))


def filter_logits(logits: torch.Tensor, top_p: float | None, top_k: int | None) -> torch.Tensor:
    """Logits outside the nucleus (the most probable tokens whose mass first exceeds ``top_p``)
    or below the ``top_k``-th largest set to the dtype's minimum, as Dream does."""
    lowest = torch.finfo(logits.dtype).min
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        mass = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # a token goes when the tokens ranked above it already exceed top_p (the first one stays)
        drop_sorted = torch.zeros_like(mass, dtype=torch.bool)
        drop_sorted[..., 1:] = mass[..., :-1] > top_p
        logits = logits.masked_fill(torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted), lowest)
    if top_k is not None:
        kth = logits.topk(min(int(top_k), logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, lowest)
    return logits


def dream_proposals(
    logits: torch.Tensor,
    *,
    alg: str,
    temperature: float,
    top_p: float | None,
    top_k: int | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence and proposed token of each row of ``logits [n, V]`` (float64 inside).

    ``temperature > 0`` divides the logits and samples the token; 0 takes the most probable.
    The confidence is that token's probability (``origin``, ``maskgit_plus``), the top-1 minus
    top-2 probability (``topk_margin``) or ``sum p log(p + 1e-10)`` (``entropy``), all of the
    distribution after temperature, top-p and top-k.
    """
    logits = logits.double()
    if temperature > 0:
        logits = logits / temperature
    probs = filter_logits(logits, top_p, top_k).softmax(dim=-1)
    if temperature > 0:
        tokens = torch.multinomial(probs, 1, generator=generator)[:, 0]
        confidence = probs.gather(-1, tokens[:, None])[:, 0]
    else:
        confidence, tokens = probs.max(dim=-1)
    if alg == "topk_margin":
        top2 = probs.topk(2, dim=-1).values
        confidence = top2[:, 0] - top2[:, 1]
    elif alg == "entropy":
        confidence = (probs * torch.log(probs + 1e-10)).sum(dim=-1)
    return confidence, tokens


@torch.inference_mode()
def dream_generate(
    model: LogitsModel,
    prompts: Sequence[Sequence[int]],
    *,
    mask_id: int,
    max_new_tokens: int,
    steps: int,
    alg: str = "entropy",
    alg_temp: float | None = None,
    temperature: float = 0.0,
    top_p: float | None = None,
    top_k: int | None = None,
    eps: float = 1e-3,
    eos_id: int | Sequence[int] | None = None,
    stop: Sequence[Sequence[int]] | None = None,
    seed: int | Sequence[int] = 0,
    pad_id: int | None = None,
) -> GenerateOutput:
    """Generate ``max_new_tokens`` tokens after each prompt with Dream's sampler (module doc).

    ``model`` is a logits callable whose position ``i`` predicts token ``i`` (a
    :class:`~.dream.DreamForMaskedLM` already shifts). Outputs are cut before the first
    ``eos_id`` (one id or several) or stop sequence. ``seed``: one int (prompt ``i`` uses a
    seed derived from ``(seed, i)``) or one per prompt. A step that reveals no position of any
    prompt is skipped, not run (its outcome would not change).
    """
    _check_args(max_new_tokens, steps, alg, alg_temp, temperature, top_p, top_k, eps, stop)
    eos_ids = _as_id_tuple(eos_id)
    stops = [list(s) for s in (stop or [])]
    seeds = prompt_seeds(seed, len(prompts))
    if not prompts:
        return GenerateOutput(tokens=[], nfe=0, nfe_per_sequence=[], stopped=[])
    rows = _Rows(prompts, pad_id=mask_id if pad_id is None else pad_id, mask_id=mask_id,
                 seeds=seeds, device=model_device(model))
    rows.append_masks(max_new_tokens)
    generators = rows.random_generators()
    start = rows.prompt_width
    grid = time_grid(steps, eps)
    nfe = 0
    for step in range(steps):
        last = step == steps - 1
        t, s = grid[step], grid[step + 1]
        masked = rows.canvas[:, start:] == mask_id
        if not last and alg != "origin" and all(
            reveal_count(int(n), t, s, last) == 0 for n in masked.sum(dim=1).tolist()
        ):
            continue
        if not bool(masked.any()):
            break
        logits = call_logits(model, rows.canvas, rows.attention)[:, start:]
        nfe += 1
        for row in range(len(rows)):
            positions = masked[row].nonzero()[:, 0]
            if not len(positions):
                continue
            rows.nfe[row] += 1
            chosen, tokens = _reveal(
                logits[row, positions], alg=alg, alg_temp=alg_temp, temperature=temperature,
                top_p=top_p, top_k=top_k, generator=generators[row],
                p_reveal=1.0 if last else float(1 - s / t),
                count=reveal_count(len(positions), t, s, last),
            )
            rows.canvas[row, start + positions[chosen]] = tokens.to(rows.canvas.device)

    outputs, stopped = [], []
    for row in range(len(rows)):
        generated = rows.canvas[row, start:].tolist()
        cut = _first_stop(generated, eos_ids, stops, 0)
        outputs.append(generated if cut is None else generated[:cut])
        stopped.append(cut is not None)
    return GenerateOutput(tokens=outputs, nfe=nfe, nfe_per_sequence=rows.nfe, stopped=stopped)


def _reveal(
    logits: torch.Tensor, *, alg, alg_temp, temperature, top_p, top_k, generator, p_reveal, count
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (into the row's masked positions) to reveal this step, and their tokens."""
    sampling = dict(alg=alg, temperature=temperature, top_p=top_p, top_k=top_k, generator=generator)
    if alg == "origin":
        uniform = torch.rand(len(logits), dtype=torch.float64, device=generator.device,
                             generator=generator)
        chosen = (uniform < p_reveal).nonzero()[:, 0].to(logits.device)
        _, tokens = dream_proposals(logits[chosen], **sampling)
        return chosen, tokens
    confidence, tokens = dream_proposals(logits, **sampling)
    if count == 0:
        chosen = torch.zeros(0, dtype=torch.long, device=logits.device)
    elif alg_temp:
        weights = (confidence / alg_temp).softmax(dim=0)
        chosen = torch.multinomial(weights.to(generator.device), count, generator=generator)
        chosen = chosen.to(logits.device)
    else:
        chosen = confidence.argsort(descending=True, stable=True)[:count]
    return chosen, tokens[chosen]


def _check_args(max_new_tokens, steps, alg, alg_temp, temperature, top_p, top_k, eps, stop) -> None:
    if max_new_tokens < 1 or steps < 1:
        raise ValueError(f"max_new_tokens ({max_new_tokens}) and steps ({steps}) must be positive")
    if alg not in DREAM_ALGS:
        raise ValueError(f"alg must be one of {DREAM_ALGS}, got {alg!r}")
    if temperature < 0 or (alg_temp is not None and alg_temp < 0):
        raise ValueError(f"temperature ({temperature}) and alg_temp ({alg_temp}) must be >= 0")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    if any(not s for s in (stop or [])):
        raise ValueError("stop sequences must be non-empty token-id lists")
