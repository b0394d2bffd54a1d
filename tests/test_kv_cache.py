"""Fast-dLLM's prefix and dual key/value cache in the sampler.

A one-layer network's keys/values depend only on each position's own token, so there the cache
is exact and must reproduce the uncached sampler; deeper networks show the cache is really used.
"""
import pytest
import torch

from illada_eval.model import generate
from illada_eval.model.kv_cache import BlockKVCache

from tiny import tiny_model

PROMPTS = [[10, 11, 12, 13], [20], [30, 31, 32, 33, 34, 35, 36]]  # left padding needed


def _model(layers: int):
    # a wide weight scale spreads the logits, so float rounding cannot reorder confidences
    return tiny_model(seed=3, num_hidden_layers=layers, initializer_range=0.3)


class _Recorder(torch.nn.Module):
    """Passes calls through to the network and records each call's input width and rows."""

    def __init__(self, network):
        super().__init__()
        self.network = network
        self.widths = []
        self.rows = []

    def forward(self, input_ids, attention_mask=None, **kwargs):
        self.widths.append(input_ids.shape[1])
        self.rows.append(input_ids.shape[0])
        return self.network(input_ids, attention_mask=attention_mask, **kwargs)


def _canvas(model, seed=0):
    """A left-padded canvas: prompts, one decoded block of random tokens, two masked blocks."""
    generator = torch.Generator().manual_seed(seed)
    width = max(map(len, PROMPTS))
    ids = torch.full((len(PROMPTS), width + 12), model.config.mask_token_id)
    attention = torch.zeros_like(ids)
    for row, prompt in enumerate(PROMPTS):
        ids[row, width - len(prompt) : width] = torch.tensor(prompt)
        attention[row, width - len(prompt) :] = 1
    ids[:, width : width + 4] = torch.randint(10, 90, (len(PROMPTS), 4), generator=generator)
    return ids, attention, width + 4


def _whole_block(cache, model, ids, attention, start):
    """The cache's logits ``[B, 4, V]`` of every position of the 4-token block at ``start``."""
    read = torch.ones(len(ids), 4, dtype=torch.bool)
    return cache.block_logits(model, ids, attention, start, read).view(len(ids), 4, -1)


@torch.no_grad()
def _second_step(mode: str, layers: int):
    """A block's first and second step through the cache (the first revealed two tokens), and
    what a full pass gives at the second: (cache, canvas, first, cached, full)."""
    model = _model(layers)
    ids, attention, start = _canvas(model)
    cache = BlockKVCache(mode)
    first = _whole_block(cache, model, ids, attention, start)
    torch.testing.assert_close(first, model(ids, attention_mask=attention).logits[:, start : start + 4])
    ids[:, start : start + 2] = torch.tensor([40, 41])
    cached = _whole_block(cache, model, ids, attention, start)
    full = model(ids, attention_mask=attention).logits[:, start : start + 4]
    return cache, (model, ids, attention, start), first, cached, full


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_one_layer_cached_logits_equal_a_full_pass_after_the_block_changes(mode):
    _, _, first, cached, full = _second_step(mode, layers=1)
    torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(cached, first)  # the step saw the revealed tokens


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@torch.no_grad()
def test_deeper_network_reuses_stale_keys_until_the_next_block(mode):
    cache, canvas, _, cached, full = _second_step(mode, layers=2)
    assert (cached - full).abs().max() > 1e-4  # approximate: the cached keys are stale
    cache.forget()
    torch.testing.assert_close(_whole_block(cache, *canvas), full)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("options", [
    dict(),
    dict(variable_length=True, eos_id=2),
    dict(threshold=0.3),
    dict(cfg_scale=0.5),
    dict(threshold=0.3, cfg_scale=0.5),
])
def test_one_layer_cached_sampler_equals_the_uncached_one(mode, options):
    model = _model(layers=1)
    settings = dict(mask_id=model.config.mask_token_id, gen_length=12, block_length=4, steps=12, **options)
    exact = generate(model, PROMPTS, **settings)
    recorder = _Recorder(model)
    cached = generate(recorder, PROMPTS, kv_cache=mode, **settings)
    assert cached.tokens == exact.tokens and cached.nfe == exact.nfe
    if "threshold" in options:  # rows whose block was finished left the cached calls
        assert min(recorder.rows) < max(recorder.rows)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_one_step_per_block_runs_only_full_passes_and_equals_the_uncached_sampler(mode):
    model = _model(layers=2)
    settings = dict(mask_id=model.config.mask_token_id, gen_length=12, block_length=4, steps=3)
    recorder = _Recorder(model)
    cached = generate(recorder, PROMPTS, kv_cache=mode, **settings)
    assert cached == generate(model, PROMPTS, **settings)
    assert recorder.widths == [7 + 12] * 3


def test_later_steps_run_block_and_suffix_or_the_block_alone():
    model = _model(layers=2)
    settings = dict(mask_id=model.config.mask_token_id, gen_length=12, block_length=4, steps=6)
    widths = {}
    for mode in ("prefix", "dual"):
        recorder = _Recorder(model)
        generate(recorder, PROMPTS, kv_cache=mode, **settings)
        widths[mode] = recorder.widths
    # 3 blocks of 2 steps; the canvas is 7 prompt columns + 12
    assert widths["prefix"] == [19, 12, 19, 8, 19, 4]
    assert widths["dual"] == [19, 4, 19, 4, 19, 4]


def test_cache_errors_name_the_fix():
    with pytest.raises(ValueError, match="kv_cache must be None or one of"):
        generate(_model(1), [[1]], mask_id=5, gen_length=4, block_length=4, steps=4, kv_cache="full")
    plain = lambda ids, attention_mask: torch.zeros(*ids.shape, 8)
    with pytest.raises(TypeError, match="kv_cache needs a network that takes past_key_values"):
        generate(plain, [[1]], mask_id=5, gen_length=4, block_length=4, steps=4, kv_cache="prefix")
