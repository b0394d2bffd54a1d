"""The networks (iLLaDA, LLaDA and Dream) and the masked-diffusion process.

This package imports nothing else of the project's; its algorithms take a plain callable
``logits_fn(input_ids, attention_mask) -> logits`` (or a module whose output has ``.logits``).
"""
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from .checkpoint import CheckpointError, load_model, resolve_checkpoint
from .config import ILLADA_MASK_TOKEN_ID, LLADA_MASK_TOKEN_ID, ILLaDAConfig
from .dream import DREAM_MASK_TOKEN_ID, DreamConfig, DreamForMaskedLM, shift_logits
from .modeling import ILLaDAForMaskedLM, ILLaDAModel

# so that save_pretrained directories load with transformers' Auto classes, as users expect
AutoConfig.register(ILLaDAConfig.model_type, ILLaDAConfig, exist_ok=True)
AutoModel.register(ILLaDAConfig, ILLaDAModel, exist_ok=True)
AutoModelForMaskedLM.register(ILLaDAConfig, ILLaDAForMaskedLM, exist_ok=True)
AutoConfig.register(DreamConfig.model_type, DreamConfig, exist_ok=True)
AutoModelForMaskedLM.register(DreamConfig, DreamForMaskedLM, exist_ok=True)

# --- diffusion process (masking, losses, likelihood, samplers) ---
from ._logits import call_logits, model_device, network_output
from .dream_likelihood import dream_loglikelihood
from .dream_sampler import DREAM_ALGS, dream_generate
from .greedy import llada_is_greedy
from .likelihood import confidence_score, elbo_loglikelihood, elbo_mask_plan
from .losses import pretrain_loss, sft_loss, variable_length_sft_loss
from .masking import MaskedBatch, forward_mask
from .sampler import GenerateOutput, generate
