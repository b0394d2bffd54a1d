"""The trainer for masked-diffusion pre-training and SFT (built on illada_eval.model)."""
