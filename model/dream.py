"""The Dream network (Dream-v0-7B): Qwen2 with full bidirectional attention and shifted logits.

Qwen2 is the Llama-style network of :mod:`.modeling` plus biases on the query, key and value
projections, so Dream reuses that network and adds the three biases. Dream keeps the output
layout of the autoregressive model it was initialised from: the hidden state at position
``i`` predicts token ``i + 1``. :class:`DreamForMaskedLM` shifts its logits back
(:func:`shift_logits`) so that position ``i``'s logits predict token ``i``, as every
algorithm of this package expects; the first position then has no prediction of its own
(Dream's harnesses keep a BOS token there, never masked).

Tensor names are Qwen2's (``model.layers.N.self_attn.q_proj.bias``, ...), the official
checkpoint's, so ``save_pretrained`` writes the official layout (with this project's
``model_type``).
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ILLaDAConfig
from .modeling import ILLaDAForMaskedLM, KVCache, MaskedLMOutput

DREAM_MASK_TOKEN_ID = 151666  # `<|mask|>` in Dream-v0's tokenizer
DREAM_EOS_TOKEN_ID = 151643  # `<|endoftext|>`, also Dream's BOS and padding


class DreamConfig(ILLaDAConfig):
    """Qwen2 field names; defaults are Dream-v0-7B's (Qwen2.5-7B shapes)."""

    model_type = "illada_eval_dream"

    def __init__(
        self,
        vocab_size: int = 152064,
        hidden_size: int = 3584,
        intermediate_size: int = 18944,
        num_hidden_layers: int = 28,
        num_attention_heads: int = 28,
        num_key_value_heads: int | None = 4,
        max_position_embeddings: int = 131072,
        rms_norm_eps: float = 1e-6,
        rope_theta: float = 1000000.0,
        tie_word_embeddings: bool = False,
        mask_token_id: int = DREAM_MASK_TOKEN_ID,
        pad_token_id: int | None = DREAM_EOS_TOKEN_ID,
        bos_token_id: int | None = DREAM_EOS_TOKEN_ID,
        eos_token_id: int | None = DREAM_EOS_TOKEN_ID,
        **kwargs,
    ):
        super().__init__(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,
            num_hidden_layers=num_hidden_layers,
            num_attention_heads=num_attention_heads,
            num_key_value_heads=num_key_value_heads,
            max_position_embeddings=max_position_embeddings,
            rms_norm_eps=rms_norm_eps,
            rope_theta=rope_theta,
            tie_word_embeddings=tie_word_embeddings,
            mask_token_id=mask_token_id,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            **kwargs,
        )


def shift_logits(logits: torch.Tensor) -> torch.Tensor:
    """Logits whose position ``i`` predicts token ``i`` from an output whose position ``i``
    predicts token ``i + 1``: ``cat([logits[:, :1], logits[:, :-1]])``, as Dream's harnesses
    align them (position 0 repeats position 0's output; it is never asked for)."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


class DreamForMaskedLM(ILLaDAForMaskedLM):
    """Dream's mask predictor: logits for every position, already shifted (see module doc)."""

    config_class = DreamConfig

    def __init__(self, config: DreamConfig):
        super().__init__(config)
        for layer in self.model.layers:
            attention = layer.self_attn
            for projection in (attention.q_proj, attention.k_proj, attention.v_proj):
                # on the weight's device (meta while a checkpoint loads); Qwen2 starts them at 0
                projection.bias = nn.Parameter(
                    torch.zeros(projection.out_features, device=projection.weight.device,
                                dtype=projection.weight.dtype)
                )

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
        logits_at: torch.Tensor | None = None,
    ) -> MaskedLMOutput:
        """As the base network's forward; ``logits_at`` projects only the positions read, each
        from the hidden state one position earlier (position 0 from its own)."""
        if use_cache or past_key_values is not None:
            # the shifted logits of a cached step's first position come from the hidden state
            # of the position before it, which a key/value cache does not keep
            raise ValueError(
                "Dream's logits are shifted (position i's come from the hidden state at i - 1), "
                "so a key/value cache cannot serve them: decode Dream with kv_cache=None"
            )
        if logits_at is None:
            out = super().forward(input_ids, attention_mask, position_ids)
            out.logits = shift_logits(out.logits)
            return out
        out = self.model(input_ids, attention_mask, position_ids)
        rows, columns = logits_at.nonzero(as_tuple=True)
        out.logits = self.lm_head(out.last_hidden_state[rows, (columns - 1).clamp(min=0)])
        return out
