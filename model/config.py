"""One configuration class for both the iLLaDA and the LLaDA networks.

Field names follow the Llama/iLLaDA config.json (``hidden_size``, ``num_key_value_heads``, ...);
LLaDA's OLMo-style config.json is translated by ``checkpoint.py``. Defaults are iLLaDA-8B's.
"""
from __future__ import annotations

from transformers import PretrainedConfig

ILLADA_MASK_TOKEN_ID = 5  # `<[MASK]>`; iLLaDA's config.json does not carry it
LLADA_MASK_TOKEN_ID = 126336


class ILLaDAConfig(PretrainedConfig):
    model_type = "illada_eval"

    def __init__(
        self,
        vocab_size: int = 155136,
        hidden_size: int = 4096,
        intermediate_size: int = 14336,
        num_hidden_layers: int = 32,
        num_attention_heads: int = 32,
        num_key_value_heads: int | None = 8,
        head_dim: int | None = None,
        max_position_embeddings: int = 8192,
        rms_norm_eps: float = 1e-5,
        rope_theta: float = 500000.0,
        initializer_range: float = 0.02,
        tie_word_embeddings: bool = True,
        mask_token_id: int = ILLADA_MASK_TOKEN_ID,
        pad_token_id: int | None = None,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads or num_attention_heads
        self.head_dim = head_dim or hidden_size // num_attention_heads
        self.max_position_embeddings = max_position_embeddings
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.initializer_range = initializer_range
        self.mask_token_id = mask_token_id
        if num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads}) for grouped-query attention"
            )
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
