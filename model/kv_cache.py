"""Approximate key/value caching for block-wise diffusion decoding (Fast-dLLM's prefix and dual cache).

Attention is bidirectional, so every key and value changes whenever any token of the canvas
changes: no cache is exact. Within one block, though, only the block's own tokens change, and
the keys/values of the rest move little. So the first step of each block runs the whole canvas
and keeps every layer's keys/values; the block's later steps reuse them:

- ``"prefix"``: run the block and everything after it; the prompt and the blocks decoded before
  come from the cache;
- ``"dual"``: run the block alone; the prefix and the still-masked suffix come from the cache.

A one-layer network's keys/values depend only on each position's own token, so there both modes
are exact; that is how the tests check the positions and masks. Each block's first step is the
uncached pass itself, so with one step per block the cached sampler equals the uncached one.
"""
from __future__ import annotations

import torch

from ._logits import LogitsModel, network_output, select_block
from .modeling import KVCache, default_position_ids

KV_CACHE_MODES = ("prefix", "dual")


class BlockKVCache:
    """What the later steps of the current block reuse from its first step: the cached
    keys/values they attend to, with the matching attention mask and the input's positions."""

    def __init__(self, mode: str):
        if mode not in KV_CACHE_MODES:
            raise ValueError(f"kv_cache must be None or one of {KV_CACHE_MODES}, got {mode!r}")
        self.mode = mode
        self.past: KVCache | None = None
        self.mask: torch.Tensor | None = None  # over past + input; None when nothing is padded
        self.positions: torch.Tensor | None = None  # of the input's tokens
        self.span = slice(None)  # the canvas columns the later steps run
        self.rows: torch.Tensor | None = None  # the rows of the first step's batch still held

    def forget(self) -> None:
        """Called when a block starts: its first step must see the current canvas."""
        self.past = None

    def block_logits(
        self,
        model: LogitsModel,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        start: int,
        read: torch.Tensor,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``[n, V]`` of the block ``start : start + block`` at the positions where
        ``read [B, block]`` is true (row-major order); only those positions are projected.

        On a later step, ``rows`` (ascending indices into the first step's batch) says which
        rows ``ids`` holds: rows whose block is finished leave the forward, and their cache
        entries are dropped for the rest of the block.
        """
        if self.past is None:
            output = _call_network(model, ids, select_block(ids, start, read), attention_mask=attention_mask)
            positions = default_position_ids(ids, attention_mask)
            self._keep(output.key_values, attention_mask, positions, start, start + read.shape[1])
            self.rows = torch.arange(len(ids), device=ids.device)
            return output.logits
        if rows is not None and not torch.equal(rows, self.rows):
            self._keep_rows(rows)
        later = ids[:, self.span]  # the block comes first in both modes
        return _call_network(
            model, later, select_block(later, 0, read), attention_mask=self.mask,
            past_key_values=self.past, position_ids=self.positions,
        ).logits

    def _keep(self, key_values: KVCache, attention_mask, positions, start: int, end: int) -> None:
        if self.mode == "prefix":
            self.span = slice(start, None)
            self.past = [(k[:, :, :start], v[:, :, :start]) for k, v in key_values]
            self.mask = attention_mask
        else:
            # dual: the block attends to cached prefix and suffix; the order of keys does not
            # matter to attention, only their positions (already rotated in) and the mask
            self.span = slice(start, end)
            self.past = [
                (torch.cat((k[:, :, :start], k[:, :, end:]), dim=2),
                 torch.cat((v[:, :, :start], v[:, :, end:]), dim=2))
                for k, v in key_values
            ]
            self.mask = None if attention_mask is None else torch.cat(
                (attention_mask[:, :start], attention_mask[:, end:], attention_mask[:, start:end]), dim=1
            )
        self.positions = positions[:, self.span]

    def _keep_rows(self, rows: torch.Tensor) -> None:
        """Hold only ``rows`` from now on (a subset of the rows held)."""
        where = torch.searchsorted(self.rows, rows)
        self.past = [(k[where], v[where]) for k, v in self.past]
        self.mask = None if self.mask is None else self.mask[where]
        self.positions = self.positions[where]
        self.rows = rows


def _call_network(model: LogitsModel, input_ids: torch.Tensor, logits_at: torch.Tensor, **kwargs):
    try:
        output = network_output(model, input_ids, logits_at, use_cache=True, **kwargs)
    except TypeError as error:
        raise TypeError(
            "kv_cache needs a network that takes past_key_values, position_ids and use_cache and "
            f"returns .key_values (illada_eval's ILLaDAForMaskedLM); this one does not ({error}). "
            "Use kv_cache=None with other models."
        ) from error
    if getattr(output, "key_values", None) is None:
        raise TypeError(
            f"kv_cache needs the model output's .key_values; {type(output).__name__} has none. "
            "Use kv_cache=None with this model."
        )
    return output
