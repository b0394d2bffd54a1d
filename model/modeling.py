"""The iLLaDA / LLaDA network: a Llama-style decoder with the causal mask removed.

Pre-norm blocks, RMSNorm, SwiGLU, rotate-half RoPE, grouped-query attention through torch SDPA,
no biases. Module names match the official iLLaDA checkpoint, so ``save_pretrained`` writes its
tensor names. Padding: padded keys are masked out and position ids count real tokens only, so a
sequence's logits do not depend on the padding its batch needed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .config import ILLaDAConfig

# one (key, value) pair per layer, each [batch, kv_heads, length, head_dim]
KVCache = list[tuple[torch.Tensor, torch.Tensor]]


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # normalise in (at least) fp32, cast back, then scale (both official implementations do this)
        h = x.to(torch.promote_types(x.dtype, torch.float32))
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RotaryEmbedding(nn.Module):
    """cos/sin tables of rotate-half RoPE, built once per device and length, then indexed.

    Not a buffer: the tables are rebuilt on first use, so models built on the meta device or
    loaded by transformers never carry stale or uninitialised ones.
    """

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta
        self._tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, position_ids: torch.Tensor, length_bound: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for ``position_ids`` [B, L] (all below ``length_bound``), each
        [B, 1, L, head_dim], in fp32."""
        cos, sin = self._tables.get(position_ids.device, (None, None))
        if cos is None or cos.shape[0] < length_bound:
            cos, sin = self._build(length_bound, position_ids.device)
            self._tables[position_ids.device] = cos, sin
        return cos[position_ids][:, None], sin[position_ids][:, None]

    def _build(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        length = -(-length // 256) * 256  # round up: a growing canvas rebuilds rarely
        with torch.no_grad():
            exponents = torch.arange(0, self.head_dim, 2, dtype=torch.float64, device=device)
            inv_freq = (1.0 / self.theta ** (exponents / self.head_dim)).float()
            angles = torch.arange(length, device=device).float()[:, None] * inv_freq
            angles = torch.cat((angles, angles), dim=-1)
            return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    h = x.to(torch.promote_types(x.dtype, torch.float32))
    return (h * cos + rotate_half(h) * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, config: ILLaDAConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        hidden = config.hidden_size
        self.q_proj = nn.Linear(hidden, self.num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, self.num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, self.num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, hidden, bias=False)

    def forward(self, x, cos, sin, key_mask, past_kv=None, use_cache=False):
        batch, length, _ = x.shape
        q = self.q_proj(x).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # only when asked: returned views would keep activations alive (and FSDP2 warns)
        new_kv = (k, v) if use_cache else None
        if past_kv is not None:
            k = torch.cat((past_kv[0], k), dim=2)
            v = torch.cat((past_kv[1], v), dim=2)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask, enable_gqa=self.num_kv_heads != self.num_heads
        )
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, -1)), new_kv


class MLP(nn.Module):
    def __init__(self, config: ILLaDAConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, config: ILLaDAConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, key_mask, past_kv=None, use_cache=False):
        attn_out, new_kv = self.self_attn(self.input_layernorm(x), cos, sin, key_mask, past_kv, use_cache)
        h = x + attn_out
        return h + self.mlp(self.post_attention_layernorm(h)), new_kv


@dataclass
class MaskedLMOutput(ModelOutput):
    logits: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    key_values: KVCache | None = None


class ILLaDAPreTrainedModel(PreTrainedModel):
    config_class = ILLaDAConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["DecoderLayer"]
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count real tokens only: left or right padding does not shift them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def default_position_ids(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, past_length: int = 0
) -> torch.Tensor:
    """Positions of ``input_ids`` after ``past_length`` cached tokens; ``attention_mask`` (when
    given) covers cache + input, and only real tokens count."""
    if attention_mask is not None:
        return position_ids_from_mask(attention_mask)[:, past_length:]
    batch, length = input_ids.shape
    return torch.arange(past_length, past_length + length, device=input_ids.device).expand(batch, -1)


class ILLaDAModel(ILLaDAPreTrainedModel):
    def __init__(self, config: ILLaDAConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
    ) -> MaskedLMOutput:
        """Bidirectional pass. ``past_key_values`` are keys/values of tokens that precede
        ``input_ids`` (a prefix cache); ``attention_mask`` then covers prefix + input."""
        batch, length = input_ids.shape
        past_length = past_key_values[0][0].shape[2] if past_key_values else 0
        if attention_mask is not None and attention_mask.shape != (batch, past_length + length):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but the cached prefix "
                f"and input_ids need {(batch, past_length + length)}"
            )
        if position_ids is None:
            position_ids = default_position_ids(input_ids, attention_mask, past_length)
            length_bound = past_length + length
        else:
            length_bound = int(position_ids.max()) + 1 if position_ids.numel() else 0
        key_mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            keep = attention_mask.bool()
            # a row of nothing but padding would give NaN; let it attend anywhere, it is ignored
            keep = keep | ~keep.any(-1, keepdim=True)
            key_mask = keep[:, None, None, :]
        cos, sin = self.rotary(position_ids, length_bound)
        h = self.embed_tokens(input_ids)
        new_cache: KVCache = []
        for i, layer in enumerate(self.layers):
            past = past_key_values[i] if past_key_values else None
            if self.gradient_checkpointing and self.training:
                h, kv = self._gradient_checkpointing_func(
                    layer.__call__, h, cos, sin, key_mask, past, use_cache
                )
            else:
                h, kv = layer(h, cos, sin, key_mask, past, use_cache)
            if use_cache:
                new_cache.append(kv)
        return MaskedLMOutput(
            last_hidden_state=self.norm(h), key_values=new_cache if use_cache else None
        )


class ILLaDAForMaskedLM(ILLaDAPreTrainedModel):
    """The mask predictor: logits for every position, given a partly masked sequence."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: ILLaDAConfig):
        super().__init__(config)
        self.model = ILLaDAModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
        logits_at: torch.Tensor | None = None,
    ) -> MaskedLMOutput:
        """``logits_at`` (bool [B, L]) projects only the positions that are read: ``logits`` is
        then ``[n, V]``, equal to ``full_logits[logits_at]``; the lm head over a large vocabulary
        is the largest single cost of a call."""
        out = self.model(input_ids, attention_mask, position_ids, past_key_values, use_cache)
        hidden = out.last_hidden_state
        # the layers still run every position: running the last layer's queries only where
        # logits are read would save more, but a position's numbers would then depend, in the
        # last bit, on which positions the rest of its batch reads, and scores must not
        out.logits = self.lm_head(hidden if logits_at is None else hidden[logits_at])
        return out
