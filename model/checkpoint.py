"""Loading checkpoints: the project's own saves and the official iLLaDA, LLaDA and Dream layouts.

All go through one path: read config.json and translate it, read the safetensors
(single file or sharded), rename the tensors to this implementation's names, check every name
and shape against the config, then assign the tensors into a model built without memory.
No remote code is run.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from .config import LLADA_MASK_TOKEN_ID, ILLaDAConfig
from .dream import DREAM_MASK_TOKEN_ID, DreamConfig, DreamForMaskedLM
from .modeling import ILLaDAForMaskedLM

HUB_FILE_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.py"]

# LLaDA (OLMo-style) tensor name -> this implementation's (= official iLLaDA) name
LLADA_TENSOR_RENAMES = [
    (r"^model\.transformer\.wte\.weight$", "model.embed_tokens.weight"),
    (r"^model\.transformer\.ln_f\.weight$", "model.norm.weight"),
    (r"^model\.transformer\.ff_out\.weight$", "lm_head.weight"),
    (r"^model\.transformer\.blocks\.(\d+)\.attn_norm\.", r"model.layers.\1.input_layernorm."),
    (r"^model\.transformer\.blocks\.(\d+)\.ff_norm\.", r"model.layers.\1.post_attention_layernorm."),
    (r"^model\.transformer\.blocks\.(\d+)\.([qkv])_proj\.", r"model.layers.\1.self_attn.\2_proj."),
    (r"^model\.transformer\.blocks\.(\d+)\.attn_out\.", r"model.layers.\1.self_attn.o_proj."),
    (r"^model\.transformer\.blocks\.(\d+)\.ff_proj\.", r"model.layers.\1.mlp.gate_proj."),
    (r"^model\.transformer\.blocks\.(\d+)\.up_proj\.", r"model.layers.\1.mlp.up_proj."),
    (r"^model\.transformer\.blocks\.(\d+)\.ff_out\.", r"model.layers.\1.mlp.down_proj."),
]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the path and the fix."""


def resolve_checkpoint(path_or_hub_id: str | Path, revision: str | None = None) -> Path:
    """A local checkpoint directory: the path itself, or a Hub snapshot downloaded to the cache."""
    path = Path(path_or_hub_id).expanduser()
    if path.is_dir():
        return path
    text = str(path_or_hub_id)
    looks_like_hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", text) is not None and not path.exists()
    if not looks_like_hub_id:
        raise FileNotFoundError(
            f"no checkpoint directory at '{text}': give a directory holding config.json and "
            "*.safetensors, or a Hugging Face Hub id such as 'GSAI-ML/LLaDA-8B-Base'"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(text, revision=revision, allow_patterns=HUB_FILE_PATTERNS))
    except Exception as error:  # network, auth, unknown repo: all end the same way for the user
        raise FileNotFoundError(
            f"could not get '{text}' from the Hugging Face Hub ({type(error).__name__}: {error}). "
            "Check the id and your network / HF_TOKEN, or pass a local checkpoint directory."
        ) from error


def read_config(directory: Path) -> tuple[str, ILLaDAConfig]:
    """The checkpoint's kind ('illada_eval', 'illada', 'llada' or 'dream') and its translated config."""
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise CheckpointError(
            f"{directory} has no config.json: point at a directory written by save_pretrained "
            "or an official iLLaDA / LLaDA / Dream checkpoint"
        )
    try:
        raw = json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{config_file} is not valid JSON ({error}); restore the file") from error
    kind = checkpoint_kind(raw, config_file)
    translate = {"illada_eval": config_from_own, "illada": config_from_illada, "llada": config_from_llada,
                 "dream": config_from_dream}
    return kind, translate[kind](raw, config_file)


def checkpoint_kind(raw: dict[str, Any], config_file: Path) -> str:
    model_type = raw.get("model_type")
    architectures = raw.get("architectures") or []
    auto_map = json.dumps(raw.get("auto_map", {}))
    if model_type == ILLaDAConfig.model_type:
        return "illada_eval"
    if model_type in ("Dream", DreamConfig.model_type) or "DreamModel" in architectures:
        return "dream"
    if model_type == "llada" or "LLaDAModelLM" in architectures or "d_model" in raw:
        return "llada"
    if "ILLaDAForCausalLM" in architectures or "ILLaDA" in auto_map or model_type == "illada":
        return "illada"
    raise CheckpointError(
        f"{config_file}: unknown architecture (model_type={model_type!r}, "
        f"architectures={architectures}). Supported: iLLaDA (ILLaDAForCausalLM), "
        "LLaDA (model_type 'llada'), Dream (model_type 'Dream') and this project's own saves."
    )


def require(condition: bool, config_file: Path, what: str) -> None:
    if not condition:
        raise CheckpointError(f"{config_file}: unsupported setting: {what}")


def config_from_own(raw: dict[str, Any], config_file: Path) -> ILLaDAConfig:
    return ILLaDAConfig.from_dict(raw)


def config_from_illada(raw: dict[str, Any], config_file: Path) -> ILLaDAConfig:
    require(not raw.get("attention_bias") and not raw.get("mlp_bias"), config_file, "biases")
    require(raw.get("layer_norm_eps") is None, config_file, "LayerNorm (layer_norm_eps is set)")
    return ILLaDAConfig(**llama_style_fields(raw, config_file))


def config_from_dream(raw: dict[str, Any], config_file: Path) -> DreamConfig:
    """Dream's Qwen2 config.json (or this project's save of a Dream network); the mask id comes
    from config.json, else generation_config.json, else Dream-v0's."""
    if raw.get("model_type") == DreamConfig.model_type:
        return DreamConfig.from_dict(raw)
    require(not raw.get("use_sliding_window"), config_file, "use_sliding_window=true")
    fields = llama_style_fields(raw, config_file)
    generation_file = config_file.parent / "generation_config.json"
    generation = json.loads(generation_file.read_text()) if generation_file.is_file() else {}
    mask_id = fields.get("mask_token_id", generation.get("mask_token_id", DREAM_MASK_TOKEN_ID))
    if not 0 <= mask_id < fields["vocab_size"]:
        raise CheckpointError(
            f"{config_file}: mask_token_id {mask_id} is outside the vocabulary "
            f"({fields['vocab_size']} tokens); set mask_token_id in config.json"
        )
    fields["mask_token_id"] = mask_id
    return DreamConfig(**fields)


def llama_style_fields(raw: dict[str, Any], config_file: Path) -> dict[str, Any]:
    """The settings iLLaDA's (Llama) and Dream's (Qwen2) config.json name alike; absent optional
    ones are left to the config class's defaults (each model's own)."""
    require(raw.get("hidden_act", "silu") == "silu", config_file, f"hidden_act={raw.get('hidden_act')}")
    rope_scaling = raw.get("rope_scaling")
    require(
        rope_scaling is None or rope_scaling.get("rope_type", rope_scaling.get("type")) == "default",
        config_file,
        f"rope_scaling={rope_scaling}",
    )
    fields = {name: raw[name] for name in (
        "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    )}
    optional = (
        "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps",
        "initializer_range", "tie_word_embeddings", "mask_token_id",
        "pad_token_id", "bos_token_id", "eos_token_id",
    )
    fields.update({name: raw[name] for name in optional if raw.get(name) is not None})
    rope_theta = raw.get("rope_theta") or (raw.get("rope_parameters") or {}).get("rope_theta")
    if rope_theta is not None:
        fields["rope_theta"] = rope_theta
    return fields


def config_from_llada(raw: dict[str, Any], config_file: Path) -> ILLaDAConfig:
    require(raw.get("block_type", "llama") == "llama", config_file, f"block_type={raw.get('block_type')}")
    require(raw.get("activation_type", "silu") == "silu", config_file, f"activation_type={raw.get('activation_type')}")
    require(raw.get("layer_norm_type", "rms") == "rms", config_file, f"layer_norm_type={raw.get('layer_norm_type')}")
    require(not raw.get("include_bias", False), config_file, "include_bias=true")
    require(raw.get("rope", True) and not raw.get("alibi", False), config_file, "positions other than RoPE")
    return ILLaDAConfig(
        vocab_size=raw.get("embedding_size") or raw["vocab_size"],
        hidden_size=raw["d_model"],
        intermediate_size=raw["mlp_hidden_size"],
        num_hidden_layers=raw["n_layers"],
        num_attention_heads=raw["n_heads"],
        num_key_value_heads=raw.get("n_kv_heads"),
        max_position_embeddings=raw.get("max_sequence_length", 4096),
        rms_norm_eps=raw.get("rms_norm_eps", 1e-5),
        rope_theta=raw.get("rope_theta", 500000.0),
        tie_word_embeddings=raw.get("weight_tying", False),
        mask_token_id=raw.get("mask_token_id", LLADA_MASK_TOKEN_ID),
        pad_token_id=raw.get("pad_token_id"),
        bos_token_id=raw.get("bos_token_id"),
        eos_token_id=raw.get("eos_token_id"),
    )


def weight_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [name for name in shards if not (directory / name).is_file()]
        if missing:
            raise CheckpointError(
                f"{index} lists shards that are not in {directory}: {missing}; finish the download"
            )
        return [directory / name for name in shards]
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise CheckpointError(
            f"{directory} has no *.safetensors weights; download them (e.g. `huggingface-cli "
            "download <id> --local-dir <dir>`) or save the model with save_pretrained"
        )
    return files


def read_tensors(files: list[Path], device: torch.device) -> dict[str, torch.Tensor]:
    # safetensors accepts "cpu" but not an indexed "cpu:0" (what accelerate reports)
    target = "cpu" if device.type == "cpu" else str(device)
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            tensors.update(load_file(file, device=target))
        except Exception as error:  # safetensors raises its own error types for damaged files
            raise CheckpointError(
                f"cannot read {file} ({error}); the file is damaged or incomplete: download it again"
            ) from error
    return tensors


def rename_llada_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for name, tensor in tensors.items():
        new_name = name
        for pattern, replacement in LLADA_TENSOR_RENAMES:
            new_name, count = re.subn(pattern, replacement, name)
            if count:
                break
        renamed[new_name] = tensor
    return renamed


def check_tensors(model: ILLaDAForMaskedLM, tensors: dict[str, torch.Tensor], directory: Path) -> None:
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        expected.pop("lm_head.weight", None)
        tensors.pop("lm_head.weight", None)  # the tie makes it a copy of the embeddings
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong_shape = [
        f"{name}: file {tuple(tensors[name].shape)}, config needs {shape}"
        for name, shape in expected.items()
        if name in tensors and tuple(tensors[name].shape) != shape
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    if wrong_shape:
        problems.append(f"shapes that do not fit config.json {wrong_shape[:5]}")
    if problems:
        raise CheckpointError(
            f"the weights in {directory} do not match its config.json: " + "; ".join(problems)
            + ". Use the config.json that was saved with these weights."
        )


def load_model(
    path_or_hub_id: str | Path,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    revision: str | None = None,
) -> ILLaDAForMaskedLM:
    """Load an iLLaDA, LLaDA or Dream checkpoint (own save, official layout, or Hub id), in eval mode.

    ``dtype=None`` keeps the dtype the weights were stored in; ``device=None`` means CPU.
    """
    directory = resolve_checkpoint(path_or_hub_id, revision)
    kind, config = read_config(directory)
    device = torch.device(device or "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but CUDA is not available here; use device='cpu'")
    tensors = read_tensors(weight_files(directory), device)
    if kind == "llada":
        tensors = rename_llada_tensors(tensors)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype) if dtype != "auto" else None
    dtype = dtype or next(t.dtype for t in tensors.values() if t.is_floating_point())
    tensors = {name: t.to(dtype) for name, t in tensors.items()}
    with torch.device("meta"):
        model = DreamForMaskedLM(config) if kind == "dream" else ILLaDAForMaskedLM(config)
    check_tensors(model, tensors, directory)
    model.load_state_dict(tensors, strict=False, assign=True)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.eval()
