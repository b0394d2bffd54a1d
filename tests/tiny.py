"""Tiny networks and checkpoint directories in the official layouts, built inside the tests."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from illada_eval.model import ILLaDAConfig, ILLaDAForMaskedLM

VOCAB = 97


def tiny_config(**overrides) -> ILLaDAConfig:
    settings = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=10000.0,
        mask_token_id=5,
        eos_token_id=2,
        pad_token_id=0,
    )
    settings.update(overrides)
    return ILLaDAConfig(**settings)


def tiny_model(seed: int = 0, **overrides) -> ILLaDAForMaskedLM:
    torch.manual_seed(seed)
    model = ILLaDAForMaskedLM(tiny_config(**overrides)).eval()
    # RMSNorm weights start at one; random ones make the checks see a wrong scale
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                parameter.uniform_(0.5, 1.5)
    return model


def random_tensors(config: ILLaDAConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under this implementation's (= official iLLaDA) names, lm_head included."""
    generator = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        shapes = {n: t.shape for n, t in ILLaDAForMaskedLM(config).state_dict().items()}
    shapes["lm_head.weight"] = (config.vocab_size, config.hidden_size)
    return {name: torch.randn(shape, generator=generator) * 0.2 for name, shape in shapes.items()}


def write_illada_checkpoint(directory: Path, tensors: dict[str, torch.Tensor], config: ILLaDAConfig,
                            shards: int = 1, with_lm_head: bool = True) -> Path:
    """An official-style iLLaDA directory: Llama-style config.json with auto_map, safetensors."""
    directory.mkdir(parents=True, exist_ok=True)
    raw = {
        "architectures": ["ILLaDAForCausalLM"],
        "auto_map": {"AutoModelForCausalLM": "modeling_illada.ILLaDAForCausalLM"},
        "model_type": "illada",
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": "silu",
        "rms_norm_eps": config.rms_norm_eps,
        "layer_norm_eps": None,
        "rope_theta": config.rope_theta,
        "rope_scaling": None,
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": 0.0,
        "resid_pdrop": 0.0,
        "vocab_size": config.vocab_size,
        "pad_token_id": config.pad_token_id,
        "tie_word_embeddings": True,
        "max_position_embeddings": config.max_position_embeddings,
        "initializer_range": 0.02,
        "transformers_version": "4.57.1",
    }
    (directory / "config.json").write_text(json.dumps(raw))
    tensors = dict(tensors)
    if with_lm_head:
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
    else:
        tensors.pop("lm_head.weight", None)
    names = sorted(tensors)
    if shards == 1:
        save_file(tensors, directory / "model.safetensors")
        return directory
    weight_map = {}
    for index in range(shards):
        part = names[index::shards]
        file = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: tensors[n] for n in part}, directory / file)
        weight_map.update({n: file for n in part})
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return directory


# official LLaDA names, written out independently of the loader's renaming table
LLADA_NAMES = {
    "model.embed_tokens.weight": "model.transformer.wte.weight",
    "model.norm.weight": "model.transformer.ln_f.weight",
    "lm_head.weight": "model.transformer.ff_out.weight",
}
LLADA_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "q_proj.weight",
    "self_attn.k_proj.weight": "k_proj.weight",
    "self_attn.v_proj.weight": "v_proj.weight",
    "self_attn.o_proj.weight": "attn_out.weight",
    "post_attention_layernorm.weight": "ff_norm.weight",
    "mlp.gate_proj.weight": "ff_proj.weight",
    "mlp.up_proj.weight": "up_proj.weight",
    "mlp.down_proj.weight": "ff_out.weight",
}


def to_llada_names(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for name, tensor in tensors.items():
        if name in LLADA_NAMES:
            renamed[LLADA_NAMES[name]] = tensor
            continue
        _, _, layer, rest = name.split(".", 3)
        renamed[f"model.transformer.blocks.{layer}.{LLADA_LAYER_NAMES[rest]}"] = tensor
    return renamed


def write_llada_checkpoint(directory: Path, tensors: dict[str, torch.Tensor], config: ILLaDAConfig) -> Path:
    """An official-style LLaDA directory: OLMo-style config.json, model.transformer.* names."""
    directory.mkdir(parents=True, exist_ok=True)
    raw = {
        "model_type": "llada",
        "architectures": ["LLaDAModelLM"],
        "d_model": config.hidden_size,
        "n_layers": config.num_hidden_layers,
        "n_heads": config.num_attention_heads,
        "n_kv_heads": config.num_attention_heads,
        "mlp_hidden_size": config.intermediate_size,
        "vocab_size": config.vocab_size,
        "embedding_size": config.vocab_size,
        "rope_theta": config.rope_theta,
        "rms_norm_eps": 1e-5,
        "max_sequence_length": config.max_position_embeddings,
        "weight_tying": False,
        "include_bias": False,
        "mask_token_id": config.mask_token_id,
        "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id,
        "block_type": "llama",
        "activation_type": "silu",
        "layer_norm_type": "rms",
    }
    (directory / "config.json").write_text(json.dumps(raw))
    save_file(to_llada_names(tensors), directory / "model.safetensors")
    return directory


def full_projection(model: ILLaDAForMaskedLM):
    """The network as a plain logits callable: it cannot take ``logits_at``, so every position
    is projected and the caller selects (the reference for logits-only projection)."""
    return lambda input_ids, attention_mask: model(input_ids, attention_mask=attention_mask).logits


def projected_rows(model: ILLaDAForMaskedLM) -> list[int]:
    """A list that records how many positions each later call's lm head projects."""
    rows: list[int] = []
    model.lm_head.register_forward_hook(lambda _, inputs, __: rows.append(inputs[0].shape[:-1].numel()))
    return rows


def row_by_row(model: ILLaDAForMaskedLM):
    """The network as a logits callable that runs each row's real tokens alone: its numbers then
    depend on nothing but the row, so two computations that meet the same rows (batched and
    padded differently) meet bitwise the same logits, in the network's dtype."""
    def logits(input_ids, attention_mask=None):
        out = torch.zeros(*input_ids.shape, model.config.vocab_size, dtype=model.dtype)
        for row in range(len(input_ids)):
            real = slice(None) if attention_mask is None else attention_mask[row].bool()
            out[row, real] = model(input_ids[row, real][None]).logits[0]
        return out

    return logits
