"""The Dream network: Qwen2 shapes, full attention, shifted logits, the official checkpoint layout."""
import json
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModelForMaskedLM

from illada_eval import load_model
from illada_eval.model import (
    CheckpointError,
    DreamConfig,
    DreamForMaskedLM,
    confidence_score,
    elbo_loglikelihood,
    generate,
    shift_logits,
)

from toy_models import ContextToy

VOCAB = 97
MASK = 5


def tiny_dream_config(**overrides) -> DreamConfig:
    settings = dict(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        rms_norm_eps=1e-6, rope_theta=10000.0, mask_token_id=MASK, eos_token_id=2,
        pad_token_id=0, bos_token_id=1,
    )
    settings.update(overrides)
    return DreamConfig(**settings)


def random_qwen2_tensors(config: DreamConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under Qwen2's names, written out here (not taken from the network)."""
    hidden, inner = config.hidden_size, config.intermediate_size
    head_dim = hidden // config.num_attention_heads
    q_out, kv_out = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    shapes = {
        "model.embed_tokens.weight": (config.vocab_size, hidden),
        "model.norm.weight": (hidden,),
        "lm_head.weight": (config.vocab_size, hidden),
    }
    for i in range(config.num_hidden_layers):
        layer = f"model.layers.{i}."
        shapes.update({
            layer + "input_layernorm.weight": (hidden,),
            layer + "post_attention_layernorm.weight": (hidden,),
            layer + "self_attn.q_proj.weight": (q_out, hidden),
            layer + "self_attn.q_proj.bias": (q_out,),
            layer + "self_attn.k_proj.weight": (kv_out, hidden),
            layer + "self_attn.k_proj.bias": (kv_out,),
            layer + "self_attn.v_proj.weight": (kv_out, hidden),
            layer + "self_attn.v_proj.bias": (kv_out,),
            layer + "self_attn.o_proj.weight": (hidden, q_out),
            layer + "mlp.gate_proj.weight": (inner, hidden),
            layer + "mlp.up_proj.weight": (inner, hidden),
            layer + "mlp.down_proj.weight": (hidden, inner),
        })
    generator = torch.Generator().manual_seed(seed)
    tensors = {name: torch.randn(shape, generator=generator) * 0.2 for name, shape in shapes.items()}
    for name, tensor in tensors.items():
        if name.endswith("norm.weight"):  # norms near one, so a wrong scale shows
            tensor.add_(1.0)
    return tensors


def write_dream_checkpoint(directory, tensors, config: DreamConfig, *, shards: int = 1,
                           mask_in: str = "config") -> None:
    """An official-style Dream directory: Qwen2-style config.json with model_type Dream and
    auto_map, safetensors (sharded with an index when ``shards > 1``)."""
    directory.mkdir(parents=True, exist_ok=True)
    raw = {
        "architectures": ["DreamModel"],
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig",
                     "AutoModel": "modeling_dream.DreamModel"},
        "model_type": "Dream",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "hidden_act": "silu",
        "max_position_embeddings": config.max_position_embeddings,
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta,
        "rope_scaling": None,
        "use_sliding_window": False,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "attention_dropout": 0.0,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id,
        "torch_dtype": "float32",
    }
    if mask_in == "config":
        raw["mask_token_id"] = config.mask_token_id
    elif mask_in == "generation_config":
        (directory / "generation_config.json").write_text(
            json.dumps({"mask_token_id": config.mask_token_id, "eos_token_id": config.eos_token_id})
        )
    (directory / "config.json").write_text(json.dumps(raw))
    if shards == 1:
        save_file(tensors, directory / "model.safetensors")
        return
    names = sorted(tensors)
    weight_map = {}
    for index in range(shards):
        file = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: tensors[n] for n in names[index::shards]}, directory / file)
        weight_map.update({n: file for n in names[index::shards]})
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def qwen2_full_attention_logits(tensors, config: DreamConfig, ids: torch.Tensor) -> torch.Tensor:
    """Qwen2 written out with plain tensor ops, attention without a causal mask; output
    position i predicts token i + 1 (Dream's raw output, before any shift)."""
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = config.hidden_size // heads
    length = ids.shape[0]

    def rms(x, weight):
        return weight * x / torch.sqrt((x * x).mean(-1, keepdim=True) + config.rms_norm_eps)

    half = head_dim // 2
    freqs = torch.tensor([config.rope_theta ** (-2 * i / head_dim) for i in range(half)], dtype=torch.float64)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * freqs[None, :]
    cos, sin = angles.cos().float(), angles.sin().float()

    def rope(x):  # [heads, L, head_dim]: pairs (i, i + half) rotate by position * freq_i
        a, b = x[..., :half], x[..., half:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)

    def project(x, name, count):
        out = x @ tensors[name + ".weight"].T + tensors[name + ".bias"]
        return out.view(length, count, head_dim).transpose(0, 1)

    x = tensors["model.embed_tokens.weight"][ids]
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        h = rms(x, tensors[p + "input_layernorm.weight"])
        q = rope(project(h, p + "self_attn.q_proj", heads))
        k = rope(project(h, p + "self_attn.k_proj", kv_heads))
        v = project(h, p + "self_attn.v_proj", kv_heads)
        group = heads // kv_heads  # query head j uses key/value head j // group
        k, v = k[torch.arange(heads) // group], v[torch.arange(heads) // group]
        weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(head_dim), dim=-1)
        x = x + (weights @ v).transpose(0, 1).reshape(length, -1) @ tensors[p + "self_attn.o_proj.weight"].T
        h = rms(x, tensors[p + "post_attention_layernorm.weight"])
        gated = torch.nn.functional.silu(h @ tensors[p + "mlp.gate_proj.weight"].T)
        x = x + (gated * (h @ tensors[p + "mlp.up_proj.weight"].T)) @ tensors[p + "mlp.down_proj.weight"].T
    return rms(x, tensors["model.norm.weight"]) @ tensors["lm_head.weight"].T


IDS = torch.tensor([1, 12, 5, 40, 3, 88, 5, 19, 2])


@pytest.mark.parametrize("shards", [1, 3])
def test_official_checkpoint_matches_plain_qwen2_with_full_attention(tmp_path, shards):
    config = tiny_dream_config()
    tensors = random_qwen2_tensors(config)
    write_dream_checkpoint(tmp_path, tensors, config, shards=shards)
    model = load_model(tmp_path)
    assert isinstance(model, DreamForMaskedLM) and model.config.mask_token_id == MASK
    raw = qwen2_full_attention_logits(tensors, config, IDS)
    expected = torch.cat([raw[:1], raw[:-1]])  # position i predicts token i
    got = model(IDS[None]).logits[0]
    difference = (got - expected).abs().max().item()
    assert difference < 1e-5, f"logits differ from the plain Qwen2 transcription by {difference}"
    # full attention: the last token changes the first positions' logits
    changed = IDS.clone()
    changed[-1] = 50
    assert not torch.allclose(model(changed[None]).logits[0, 1], got[1])


def test_untied_head_and_biases_are_the_checkpoints(tmp_path):
    config = tiny_dream_config()
    tensors = random_qwen2_tensors(config)
    write_dream_checkpoint(tmp_path, tensors, config)
    model = load_model(tmp_path)
    assert torch.equal(model.lm_head.weight, tensors["lm_head.weight"])
    assert not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    bias = model.model.layers[1].self_attn.k_proj.bias
    assert torch.equal(bias, tensors["model.layers.1.self_attn.k_proj.bias"])


def test_padding_does_not_change_a_sequences_logits(tmp_path):
    config = tiny_dream_config()
    write_dream_checkpoint(tmp_path, random_qwen2_tensors(config), config)
    model = load_model(tmp_path)
    alone = model(IDS[None]).logits[0]
    padded = torch.cat([torch.zeros(3, dtype=torch.long), IDS])[None]
    attention = torch.cat([torch.zeros(3), torch.ones(len(IDS))]).long()[None]
    left = model(padded, attention_mask=attention).logits[0, 3:]
    # the first real position's shifted logits come from a padding column; it has no prediction
    difference = (left[1:] - alone[1:]).abs().max().item()
    assert difference < 1e-5, f"left padding changed the logits by {difference}"


def test_logits_at_selected_positions_equal_the_full_shifted_logits(tmp_path):
    """Projecting only the positions read (position 0 and its neighbour included: both come from
    the hidden state at 0) gives the full output's rows, in row-major order."""
    config = tiny_dream_config()
    write_dream_checkpoint(tmp_path, random_qwen2_tensors(config), config)
    model = load_model(tmp_path)
    ids = torch.stack([IDS, IDS.flip(0)])
    full = model(ids).logits
    select = torch.zeros(ids.shape, dtype=torch.bool)
    select[0, [0, 1, 4]] = True
    select[1, [2, len(IDS) - 1]] = True
    projected = model(ids, logits_at=select).logits
    difference = (projected - full[select]).abs().max().item()
    assert projected.shape == (5, config.vocab_size) and difference < 1e-6, f"differs by {difference}"


def test_mask_id_from_generation_config_and_default(tmp_path):
    config = tiny_dream_config(mask_token_id=7)
    tensors = random_qwen2_tensors(config)
    write_dream_checkpoint(tmp_path / "gen", tensors, config, mask_in="generation_config")
    assert load_model(tmp_path / "gen").config.mask_token_id == 7
    # neither file names it: Dream-v0's id, which this tiny vocabulary cannot hold
    write_dream_checkpoint(tmp_path / "none", tensors, config, mask_in="nowhere")
    with pytest.raises(CheckpointError, match="mask_token_id 151666 is outside the vocabulary"):
        load_model(tmp_path / "none")


def test_bad_checkpoints_are_named(tmp_path):
    config = tiny_dream_config()
    tensors = random_qwen2_tensors(config)
    no_bias = {n: t for n, t in tensors.items() if n != "model.layers.0.self_attn.q_proj.bias"}
    write_dream_checkpoint(tmp_path / "bias", no_bias, config)
    with pytest.raises(CheckpointError, match=r"missing tensors \['model.layers.0.self_attn.q_proj.bias'\]"):
        load_model(tmp_path / "bias")
    write_dream_checkpoint(tmp_path / "window", tensors, config)
    raw = json.loads((tmp_path / "window" / "config.json").read_text())
    raw["use_sliding_window"] = True
    (tmp_path / "window" / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="use_sliding_window"):
        load_model(tmp_path / "window")


def test_save_pretrained_round_trip_keeps_qwen2_names(tmp_path):
    config = tiny_dream_config()
    write_dream_checkpoint(tmp_path / "official", random_qwen2_tensors(config), config)
    model = load_model(tmp_path / "official")
    model.save_pretrained(tmp_path / "own")
    with safe_open(tmp_path / "own" / "model.safetensors", "pt") as f:
        assert "model.layers.0.self_attn.v_proj.bias" in set(f.keys())
    reloaded = load_model(tmp_path / "own")
    assert isinstance(reloaded, DreamForMaskedLM)
    assert torch.equal(reloaded(IDS[None]).logits, model(IDS[None]).logits)
    through_auto = AutoModelForMaskedLM.from_pretrained(tmp_path / "own")  # biases load too
    assert torch.equal(through_auto(IDS[None]).logits, model(IDS[None]).logits)


def test_key_value_cache_is_refused_with_a_clear_error(tmp_path):
    config = tiny_dream_config()
    write_dream_checkpoint(tmp_path, random_qwen2_tensors(config), config)
    model = load_model(tmp_path)
    with pytest.raises(ValueError, match="kv_cache=None"):
        generate(model, [[1, 12, 40]], mask_id=MASK, gen_length=4, block_length=4, steps=4,
                 kv_cache="prefix")


# --- the shift: a toy whose position i predicts token i + 1, shifted, is the plain toy ---

class NextTokenToy:
    """ContextToy's prediction of token i + 1 placed at position i (as an autoregressive
    network lays out its output); the last position gets noise that must never be used."""

    def __init__(self, toy: ContextToy):
        self.toy = toy

    def __call__(self, input_ids, attention_mask=None):
        logits = self.toy(input_ids, attention_mask)
        noise = torch.randn(logits[:, :1].shape, dtype=logits.dtype) * 100
        return torch.cat([logits[:, 1:], noise], dim=1)


def shifted(model):
    return lambda input_ids, attention_mask=None: shift_logits(model(input_ids, attention_mask))


TOY_MASK = 9
PROMPTS = [[1, 2, 3], [4], [2, 2, 7, 1, 0]]
CONTINUATIONS = [[5, 6], [1, 2, 3, 4], [8]]


def test_shifted_next_token_toy_equals_the_plain_toy_everywhere_but_position_zero():
    toy = ContextToy(mask_id=TOY_MASK)
    ids = torch.tensor([[1, 2, TOY_MASK, 4, TOY_MASK, 6]])
    plain, wrapped = toy(ids), shifted(NextTokenToy(toy))(ids)
    assert torch.equal(wrapped[:, 1:], plain[:, 1:])


def test_shifted_toy_scores_exactly_as_the_plain_toy():
    toy = ContextToy(mask_id=TOY_MASK)
    wrapped = shifted(NextTokenToy(toy))
    for scorer in (
        lambda m: elbo_loglikelihood(m, PROMPTS, CONTINUATIONS, mask_id=TOY_MASK, mc_num=8,
                                     mc_batch_size=4, batch_size=5),
        lambda m: confidence_score(m, PROMPTS, CONTINUATIONS, mask_id=TOY_MASK, batch_size=2,
                                   return_greedy=True),
    ):
        assert scorer(wrapped) == scorer(toy)


@pytest.mark.parametrize("options", [
    dict(gen_length=8, block_length=4, steps=8),
    dict(gen_length=8, block_length=4, steps=4, temperature=0.7, remasking="random", seed=3),
    dict(gen_length=12, block_length=4, steps=12, variable_length=True, eos_id=0),
    dict(gen_length=8, block_length=4, steps=8, threshold=0.3),
])
def test_shifted_toy_decodes_exactly_as_the_plain_toy(options):
    toy = ContextToy(mask_id=TOY_MASK)
    plain = generate(toy, PROMPTS, mask_id=TOY_MASK, **options)
    wrapped = generate(shifted(NextTokenToy(toy)), PROMPTS, mask_id=TOY_MASK, **options)
    assert wrapped == plain
