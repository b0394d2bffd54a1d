"""illada-eval: evaluation harness for masked diffusion language models."""

__version__ = "0.1.0"

from illada_eval.model import load_model

__all__ = ["load_model", "__version__"]
