import json
import math

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForMaskedLM

from illada_eval import load_model
from illada_eval.model import CheckpointError, ILLaDAForMaskedLM

from tiny import (
    LLADA_LAYER_NAMES,
    VOCAB,
    projected_rows,
    random_tensors,
    tiny_config,
    tiny_model,
    write_illada_checkpoint,
    write_llada_checkpoint,
)

OFFICIAL_ILLADA_LAYER_NAMES = set(LLADA_LAYER_NAMES)  # the iLLaDA names are its keys


def reference_logits(tensors, config, input_ids):
    """The network written out with plain tensor ops, straight from the reference description."""
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = config.hidden_size // heads
    length = input_ids.shape[1]

    def rms(x, weight):
        return weight * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + config.rms_norm_eps))

    def rope(x):  # x [heads, L, head_dim], rotate-half layout
        half = head_dim // 2
        freqs = [config.rope_theta ** (-2 * i / head_dim) for i in range(half)]
        out = torch.empty_like(x)
        for pos in range(length):
            for i, f in enumerate(freqs):
                c, s = math.cos(pos * f), math.sin(pos * f)
                a, b = x[:, pos, i], x[:, pos, i + half]
                out[:, pos, i] = a * c - b * s
                out[:, pos, i + half] = b * c + a * s
        return out

    x = tensors["model.embed_tokens.weight"][input_ids[0]]
    for i in range(config.num_hidden_layers):
        t = {k.split(f"layers.{i}.", 1)[1]: v for k, v in tensors.items() if f"layers.{i}." in k}
        h = rms(x, t["input_layernorm.weight"])
        q = (h @ t["self_attn.q_proj.weight"].T).view(length, heads, head_dim).transpose(0, 1)
        k = (h @ t["self_attn.k_proj.weight"].T).view(length, kv_heads, head_dim).transpose(0, 1)
        v = (h @ t["self_attn.v_proj.weight"].T).view(length, kv_heads, head_dim).transpose(0, 1)
        q, k = rope(q), rope(k)
        group = heads // kv_heads
        k, v = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)
        weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(head_dim), dim=-1)  # no causal mask
        attn = (weights @ v).transpose(0, 1).reshape(length, -1)
        x = x + attn @ t["self_attn.o_proj.weight"].T
        h = rms(x, t["post_attention_layernorm.weight"])
        gate, up = h @ t["mlp.gate_proj.weight"].T, h @ t["mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ t["mlp.down_proj.weight"].T
    x = rms(x, tensors["model.norm.weight"])
    return (x @ tensors["lm_head.weight"].T)[None]


@pytest.fixture
def ids():
    return torch.tensor([[7, 12, 5, 40, 3, 88, 5, 19, 1]])


def test_save_writes_official_illada_tensor_names(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        names = set(f.keys())
    expected = {"model.embed_tokens.weight", "model.norm.weight"}
    for i in range(2):
        expected |= {f"model.layers.{i}.{n}" for n in OFFICIAL_ILLADA_LAYER_NAMES}
    assert names - {"lm_head.weight"} == expected
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "illada_eval"


def test_round_trip_identical_logits_and_tie_kept(tmp_path, ids):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path)
    assert not loaded.training
    assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    assert loaded.config.mask_token_id == 5
    # accelerate names the CPU "cpu:0"
    assert torch.equal(load_model(tmp_path, device="cpu:0")(ids).logits, loaded(ids).logits)
    # transformers' own Auto class reads the same directory
    auto = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert isinstance(auto, ILLaDAForMaskedLM)
    assert torch.equal(auto(ids).logits, loaded(ids).logits)


@pytest.mark.parametrize("shards,with_lm_head", [(1, True), (3, False)])
def test_official_illada_directory_loads_natively(tmp_path, ids, shards, with_lm_head):
    config = tiny_config()
    tensors = random_tensors(config)
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"]  # tied in iLLaDA
    write_illada_checkpoint(tmp_path, tensors, config, shards=shards, with_lm_head=with_lm_head)
    model = load_model(tmp_path)
    assert model.config.mask_token_id == 5  # not in the official config.json
    assert model.config.num_key_value_heads == 2
    assert model.lm_head.weight is model.model.embed_tokens.weight
    torch.testing.assert_close(model(ids).logits, reference_logits(tensors, config, ids), rtol=1e-4, atol=1e-4)


def test_official_llada_directory_matches_direct_computation(tmp_path, ids):
    config = tiny_config(num_key_value_heads=4, tie_word_embeddings=False, mask_token_id=90)
    tensors = random_tensors(config, seed=3)
    write_llada_checkpoint(tmp_path, tensors, config)
    model = load_model(tmp_path, dtype=torch.float32)
    assert model.config.mask_token_id == 90
    assert not model.config.tie_word_embeddings
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    torch.testing.assert_close(model(ids).logits, reference_logits(tensors, config, ids), rtol=1e-4, atol=1e-4)


def test_llada_mask_id_default(tmp_path):
    config = tiny_config(num_key_value_heads=4, tie_word_embeddings=False)
    write_llada_checkpoint(tmp_path, random_tensors(config), config)
    raw = json.loads((tmp_path / "config.json").read_text())
    del raw["mask_token_id"]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert load_model(tmp_path).config.mask_token_id == 126336


def test_attention_is_bidirectional(ids):
    model = tiny_model()
    changed = ids.clone()
    changed[0, -1] = 60
    assert not torch.allclose(model(ids).logits[0, 0], model(changed).logits[0, 0])


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_invariance(side):
    model = tiny_model()
    sequences = [[4, 9, 33, 2], [8, 1, 3, 70, 71, 72, 6], [11]]
    width = max(map(len, sequences))
    batch = torch.zeros(len(sequences), width, dtype=torch.long)
    mask = torch.zeros_like(batch)
    for row, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
        batch[row, span] = torch.tensor(seq)
        mask[row, span] = 1
    logits = model(batch, attention_mask=mask).logits
    for row, seq in enumerate(sequences):
        alone = model(torch.tensor([seq])).logits[0]
        torch.testing.assert_close(logits[row][mask[row].bool()], alone, rtol=1e-5, atol=1e-5)


def test_grouped_query_attention_equals_repeated_heads(ids):
    gqa = tiny_model(num_key_value_heads=2)
    mha = ILLaDAForMaskedLM(tiny_config(num_key_value_heads=4)).eval()
    state = gqa.state_dict()
    head_dim = gqa.config.head_dim
    for name in list(state):
        if name.endswith(("k_proj.weight", "v_proj.weight")):
            heads = state[name].view(2, head_dim, -1)
            state[name] = heads.repeat_interleave(2, dim=0).reshape(4 * head_dim, -1)
    mha.load_state_dict(state)
    torch.testing.assert_close(gqa(ids).logits, mha(ids).logits, rtol=1e-5, atol=1e-5)


def test_cached_prefix_gives_the_same_suffix_logits(ids):
    model = tiny_model()
    full = model(ids, use_cache=True)
    prefix = [(k[:, :, :4], v[:, :, :4]) for k, v in full.key_values]
    suffix = model(ids[:, 4:], past_key_values=prefix).logits
    torch.testing.assert_close(suffix, full.logits[:, 4:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_cache", [False, True])
def test_logits_at_equals_the_full_projection_there(ids, use_cache):
    model = tiny_model()
    batch = torch.cat([ids, ids.flip(1)])
    attention = torch.ones_like(batch)
    attention[1, :2] = 0
    select = torch.rand(batch.shape, generator=torch.Generator().manual_seed(0)) < 0.4
    rows = projected_rows(model)
    full = model(batch, attention_mask=attention, use_cache=use_cache)
    part = model(batch, attention_mask=attention, use_cache=use_cache, logits_at=select)
    assert rows == [batch.numel(), int(select.sum())]
    torch.testing.assert_close(part.logits, full.logits[select], rtol=0, atol=1e-6)
    if use_cache:  # the keys/values are those of every position either way
        for (k, v), (k_full, v_full) in zip(part.key_values, full.key_values):
            assert torch.equal(k, k_full) and torch.equal(v, v_full)


def test_logits_at_a_position_do_not_depend_on_the_other_positions_read():
    # scores must not depend on the batch: reading more positions changes a logit by float32
    # rounding at most (a BLAS may round a product of few rows differently from one of many)
    model = tiny_model()
    ids = torch.randint(6, 90, (1, 20), generator=torch.Generator().manual_seed(1))
    few = torch.zeros(1, 20, dtype=torch.bool)
    few[0, [4, 9]] = True
    more = few.clone()
    more[0, 10:18] = True
    with torch.no_grad():
        alone, together = model(ids, logits_at=few).logits, model(ids, logits_at=more).logits[:2]
    torch.testing.assert_close(alone, together, rtol=0, atol=1e-6)


def test_rope_tables_are_built_once_and_grow_with_the_length():
    rotary = tiny_model().model.rotary
    cpu = torch.device("cpu")
    rotary(torch.arange(5)[None], 5)
    table = rotary._tables[cpu][0]
    rotary(torch.arange(9)[None], 9)
    assert rotary._tables[cpu][0] is table  # not rebuilt for another length within it
    positions = torch.tensor([[0, 3, 700, 12]])
    cos, sin = rotary(positions, 701)
    assert rotary._tables[cpu][0].shape[0] >= 701
    # the per-call computation the tables replace, with the same float32 operations
    exponents = torch.arange(0, rotary.head_dim, 2).double() / rotary.head_dim
    inv_freq = (1.0 / rotary.theta**exponents).float()
    angles = positions.float()[..., None] * inv_freq
    angles = torch.cat((angles, angles), dim=-1)[:, None]
    assert torch.equal(cos, angles.cos()) and torch.equal(sin, angles.sin())


def test_training_after_inference_mode_evaluation(ids):
    model = tiny_model()
    with torch.inference_mode():  # builds the RoPE tables
        model(ids)
    model.train()
    model(ids).logits.sum().backward()
    assert model.lm_head.weight.grad is not None


# --- errors a user can cause -------------------------------------------------------------------


def test_directory_without_config(tmp_path):
    with pytest.raises(CheckpointError, match=f"{tmp_path}.*no config.json"):
        load_model(tmp_path)


def test_directory_without_weights(tmp_path):
    tiny_config().save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"no \*\.safetensors"):
        load_model(tmp_path)


def test_unknown_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(CheckpointError, match="unknown architecture.*gpt2"):
        load_model(tmp_path)


def test_shapes_that_do_not_fit_config(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["intermediate_size"] = 64
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=r"do not match its config.json.*gate_proj.*\(48, 32\).*\(64, 32\)"):
        load_model(tmp_path)


def test_truncated_safetensors(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    file = tmp_path / "model.safetensors"
    file.write_bytes(file.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="damaged or incomplete"):
        load_model(tmp_path)


def test_missing_path_and_unreachable_hub(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no checkpoint directory at"):
        load_model(tmp_path / "nope")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="could not get 'someone/not-a-model'"):
        load_model("someone/not-a-model")


def test_hub_id_downloads_then_loads(tmp_path, monkeypatch, ids):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None):
        calls.append((repo_id, revision))
        return str(tmp_path)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    loaded = load_model("org/tiny-illada", revision="abc")
    assert calls == [("org/tiny-illada", "abc")]
    assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_vocab_is_small_enough_for_tests():
    assert tiny_config().vocab_size == VOCAB <= 1000
