"""Hand-made logits callables whose exact answers are known, for testing the diffusion process.

Each is a callable ``model(input_ids, attention_mask) -> logits [B, L, V]`` honouring the
attention mask (1 = real token) and independent of where padding puts a sequence, so results
must not change with batching. Each counts its calls (``.calls``) and, with ``record=True``,
keeps copies of its inputs (``.inputs``).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

MASK_LOGIT = -1.0e4  # finite, so guidance (un + s * (cond - un)) stays finite too


class ToyModel:
    def __init__(self, vocab_size: int, mask_id: int, record: bool = False):
        if not 0 <= mask_id < vocab_size:
            raise ValueError("mask_id must be a token of the toy's vocabulary")
        self.vocab_size = vocab_size
        self.mask_id = mask_id
        self.record = record
        self.calls = 0
        self.inputs: list[tuple[torch.Tensor, torch.Tensor | None]] = []

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        self.calls += 1
        if self.record:
            mask = None if attention_mask is None else attention_mask.clone()
            self.inputs.append((input_ids.clone(), mask))
        real = (
            torch.ones_like(input_ids, dtype=torch.bool)
            if attention_mask is None
            else attention_mask.bool()
        )
        logits = self.logits(input_ids, real)
        logits[..., self.mask_id] = MASK_LOGIT
        return logits

    def logits(self, input_ids: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class UnigramToy(ToyModel):
    """Context-free: the same distribution ``probs`` (over non-mask tokens) at every position."""

    def __init__(self, probs: Sequence[float], mask_id: int, record: bool = False):
        super().__init__(len(probs), mask_id, record)
        probs = torch.tensor(probs, dtype=torch.float64)
        if probs[mask_id] != 0 or (probs < 0).any() or abs(float(probs.sum()) - 1) > 1e-9:
            raise ValueError("probs must be a distribution giving the mask token 0")
        self.log_probs = torch.log(probs)

    def logits(self, input_ids, real):
        return self.log_probs.expand(*input_ids.shape, -1).clone()

    def exact_loglikelihood(self, continuation: Sequence[int]) -> float:
        return float(sum(self.log_probs[t] for t in continuation))


class ContextToy(ToyModel):
    """Context-dependent: logits at position i = L[left neighbour] + R[right neighbour] +
    (mean of C[t] over the visible, unmasked tokens t of the sequence) + D[token at i] +
    P[i counted from the first real token] (so no two positions tie). Neighbours that are
    padding or outside the sequence count as one "edge" symbol, so the answer depends only on
    the real tokens, never on padding."""

    max_length = 64

    def __init__(self, vocab_size: int = 10, mask_id: int = 9, seed: int = 0,
                 scale: float = 1.5, record: bool = False):
        super().__init__(vocab_size, mask_id, record)
        g = torch.Generator().manual_seed(seed)
        table = lambda rows: torch.randn(rows, vocab_size, generator=g, dtype=torch.float64) * scale
        self.left, self.right = table(vocab_size + 1), table(vocab_size + 1)
        self.context, self.own = table(vocab_size), table(vocab_size)
        self.position = table(self.max_length)

    def logits(self, input_ids, real):
        edge = self.vocab_size
        ids = torch.where(real, input_ids, edge)
        border = torch.full_like(ids[:, :1], edge)
        left = torch.cat([border, ids[:, :-1]], dim=1)
        right = torch.cat([ids[:, 1:], border], dim=1)
        tokens = input_ids.clamp(0, self.vocab_size - 1)
        visible = (real & (input_ids != self.mask_id)).double()[..., None]
        bag = (self.context[tokens] * visible).sum(1) / visible.sum(1).clamp(min=1)
        position = self.position[(real.long().cumsum(dim=1) - 1).clamp(0, self.max_length - 1)]
        return self.left[left] + self.right[right] + bag[:, None, :] + self.own[tokens] + position


class ScriptedToy(ToyModel):
    """Position-scripted: at real position p (counted from the first attended token) the logit of
    ``targets[p]`` is ``strengths[p]`` and every other (non-mask) token's is 0, whatever the
    context. The confidence of each position is then known: e^s / (e^s + V - 2)."""

    def __init__(self, targets: Sequence[int], strengths: Sequence[float], vocab_size: int,
                 mask_id: int, record: bool = False):
        super().__init__(vocab_size, mask_id, record)
        if len(targets) != len(strengths):
            raise ValueError("one strength per target")
        self.targets = torch.tensor(targets, dtype=torch.long)
        self.strengths = torch.tensor(strengths, dtype=torch.float64)

    def confidence(self, position: int) -> float:
        s = float(self.strengths[position])
        return math.exp(s) / (math.exp(s) + self.vocab_size - 2)

    def logits(self, input_ids, real):
        batch, length = input_ids.shape
        position = (real.long().cumsum(dim=1) - 1).clamp(0, len(self.targets) - 1)
        logits = torch.zeros(batch, length, self.vocab_size, dtype=torch.float64)
        logits.scatter_(2, self.targets[position][..., None], self.strengths[position][..., None])
        return logits


def enumerated_elbo(model, prompt: Sequence[int], continuation: Sequence[int], mask_id: int) -> float:
    """The exact ELBO ``E_l E_S[(L / l) sum_{i in S} log p(c_i | rest)]`` by enumerating all
    ``2^L - 1`` non-empty masks (one model call)."""
    length = len(continuation)
    subsets = [s for size in range(1, length + 1) for s in itertools.combinations(range(length), size)]
    canvas = torch.tensor([list(prompt) + list(continuation)] * len(subsets))
    for row, subset in enumerate(subsets):
        for i in subset:
            canvas[row, len(prompt) + i] = mask_id
    logits = model(canvas, None)
    log_probs = torch.log_softmax(getattr(logits, "logits", logits).double(), dim=-1)
    total = 0.0
    for row, subset in enumerate(subsets):
        size = len(subset)
        weight = 1.0 / (size * math.comb(length, size))  # (1 / L) * (L / l) / C(L, l)
        total += weight * sum(
            float(log_probs[row, len(prompt) + i, continuation[i]]) for i in subset
        )
    return total


class TableToy(ToyModel):
    """Fixed logits per real position, whatever the context: ``table[p]`` is the logit vector at
    real position p (counted from the first attended token; the last row repeats)."""

    def __init__(self, table: Sequence[Sequence[float]], mask_id: int, record: bool = False,
                 dtype: torch.dtype = torch.float64):
        table = torch.tensor(table, dtype=torch.float64)
        super().__init__(table.shape[1], mask_id, record)
        self.table, self.dtype = table, dtype

    def logits(self, input_ids, real):
        position = (real.long().cumsum(dim=1) - 1).clamp(0, len(self.table) - 1)
        return self.table[position].to(self.dtype)


class RuleToy(ToyModel):
    """Logits from a rule over one sequence's real tokens: ``rule(tokens) -> [len(tokens), V]``
    (row by row, so batching and padding cannot change them)."""

    def __init__(self, rule, vocab_size: int, mask_id: int, record: bool = False):
        super().__init__(vocab_size, mask_id, record)
        self.rule = rule

    def logits(self, input_ids, real):
        logits = torch.zeros(*input_ids.shape, self.vocab_size, dtype=torch.float64)
        for row in range(len(input_ids)):
            logits[row, real[row]] = torch.as_tensor(self.rule(input_ids[row, real[row]]), dtype=torch.float64)
        return logits
