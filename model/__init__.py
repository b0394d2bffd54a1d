"""The network (iLLaDA and LLaDA) and the masked-diffusion process.

This package imports nothing else of the project's; its algorithms take a plain callable
``logits_fn(input_ids, attention_mask) -> logits`` (or a module whose output has ``.logits``).
"""
