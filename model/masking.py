"""Forward (masking) process of masked diffusion, and the random draws the estimators share.

Training masks each token independently with probability ``p = (1 - eps) * t + eps``,
``t ~ U(0, 1)`` per sequence. The likelihood estimator instead masks an exact number ``l`` of
the continuation's ``L`` tokens, a uniformly random subset of that size.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

# one generator for a whole batch, or one per row (a row's draws then ignore the other rows)
Generators = torch.Generator | Sequence[torch.Generator] | None


def derive_seed(seed: int, *parts: int | Iterable[int]) -> int:
    """A 63-bit seed that depends only on ``seed`` and ``parts`` (ints or int sequences).

    Lets each request draw its own random numbers, so a result never depends on what else was
    in the batch, on the batch order, or on the process that computed it.
    """
    digest = hashlib.blake2b(digest_size=8)
    for part in (seed, *parts):
        values = [part] if isinstance(part, int) else list(part)
        digest.update(len(values).to_bytes(8, "little"))
        for value in values:
            digest.update(int(value).to_bytes(8, "little", signed=True))
    return int.from_bytes(digest.digest(), "little") >> 1


def prompt_seeds(seed: int | Sequence[int], count: int) -> list[int]:
    """One seed per prompt: derived from ``(seed, i)`` for an int, else the given list (which
    lets a caller keep results independent of how it splits its requests)."""
    if isinstance(seed, int):
        return [derive_seed(seed, i) for i in range(count)]
    if len(seed) != count:
        raise ValueError(f"got {len(seed)} seeds for {count} prompts: give one per prompt or an int")
    return [int(s) for s in seed]


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


@dataclass
class MaskedBatch:
    """One draw of the training forward process."""

    noisy_ids: torch.Tensor  # [B, L] input with masked tokens replaced by the mask id
    masked: torch.Tensor  # [B, L] bool, True where a token was masked
    p_mask: torch.Tensor  # [B] float, the masking probability of each sequence


def forward_mask(
    input_ids: torch.Tensor,
    *,
    mask_id: int,
    eps: float = 1e-3,
    maskable: torch.Tensor | None = None,
    generator: Generators = None,
) -> MaskedBatch:
    """Mask each token with probability ``p = (1 - eps) * t + eps``, ``t ~ U(0, 1)`` per row.

    ``maskable`` (bool ``[B, L]``) protects the positions where it is false (the prompt in SFT,
    padding). ``generator`` is one generator for the whole batch, or one per row: then row ``b``
    draws its ``t`` and its token uniforms from ``generator[b]`` alone, so its mask does not
    depend on which other rows share the batch (the trainer's masks then do not depend on how a
    step is split into micro-batches). A single generator must live on ``input_ids``' device;
    per-row generators may live on the CPU (their draws are moved over), and should where rows
    are right-padded to a width their company decides: CPU draws of a longer row begin with those
    of a shorter one, so a row's real positions get the same uniforms at any width (CUDA's
    draws give no such promise).
    """
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    batch, length = input_ids.shape
    device = input_ids.device
    if generator is None or isinstance(generator, torch.Generator):
        t = torch.rand(batch, device=device, generator=generator)
        uniforms = torch.rand(batch, length, device=device, generator=generator)
    else:
        generators = list(generator)
        if len(generators) != batch:
            raise ValueError(
                f"got {len(generators)} generators for a batch of {batch} rows: pass one per row "
                "(or a single generator for the whole batch)"
            )
        draws = torch.stack([torch.rand(1 + length, device=g.device, generator=g) for g in generators])
        t, uniforms = draws[:, 0].to(device), draws[:, 1:].to(device)
    p_mask = (1.0 - eps) * t + eps
    masked = uniforms < p_mask[:, None]
    if maskable is not None:
        masked &= maskable.bool()
    noisy_ids = torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)
    return MaskedBatch(noisy_ids=noisy_ids, masked=masked, p_mask=p_mask)


def stratified_mask_counts(length: int, group_size: int, offset: int) -> torch.Tensor:
    """LLaDA's stratified mask counts: ``group_size`` values in ``[1, length]`` spread evenly.

    Count ``j`` is ``offset + round(j * length / group_size)`` wrapped into ``[1, length]``,
    with ``offset`` uniform on ``[1, length]``. LLaDA rounds ``offset + j * length / group_size``
    half-to-even, which makes the count's marginal depend on the parity of ``offset`` (biased
    when ``j * length / group_size`` ends in .5); rounding the shift alone, half up, keeps every
    count exactly uniform on ``[1, length]`` and equals LLaDA's value everywhere else.
    """
    shifts = torch.floor(torch.arange(group_size, dtype=torch.float64) * length / group_size + 0.5)
    return (offset - 1 + shifts.long()) % length + 1


def random_subsets(counts: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Bool ``[n, length]``: row ``i`` marks a uniformly random subset of ``counts[i]`` positions,
    independently of the other rows."""
    ranks = torch.rand(len(counts), length, generator=generator).argsort(dim=1).argsort(dim=1)
    return ranks < counts[:, None]


def tiled_subsets(counts: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Bool ``[n, length]``: row ``i`` marks a uniformly random subset of ``counts[i]`` positions,
    the rows together laid end to end around one random cyclic order of the positions.

    Each row alone is a fixed window of a uniformly random permutation, hence a uniform subset
    of its size (estimators stay unbiased); jointly the windows tile the cycle, so every
    position is masked about equally often within the group, which removes most of the
    variance that independent subsets add.
    """
    order = torch.randperm(length, generator=generator)
    first = int(torch.randint(length, (), generator=generator))
    starts = (first + counts.cumsum(0) - counts) % length
    steps = torch.arange(length)
    window = (starts[:, None] + steps[None, :]) % length  # each row: a rotation of the cycle
    inside = steps[None, :] < counts[:, None]
    return torch.zeros(len(counts), length, dtype=torch.bool).scatter_(1, order[window], inside)
