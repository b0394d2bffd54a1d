"""illada-eval: evaluation harness for masked diffusion language models."""

__version__ = "0.1.0"

from illada_eval.model import load_model

# registers the "illada" backend in lm-eval's model registry (lm-eval's own backends stay)
from illada_eval.adapter import DiffusionLM

__all__ = ["DiffusionLM", "load_model", "__version__"]
