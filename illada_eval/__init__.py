"""illada-eval: evaluation harness for masked diffusion language models.

Importing the package registers the ``illada`` backend in lm-eval's model registry as a lazy
entry (lm-eval's own backends stay), so ``lm_eval.simple_evaluate(model="illada", ...)`` works;
torch, transformers and the network load only when a model is built, which keeps the command
line fast.
"""
# lm-eval registers its own backends only when its registry is empty: register them first
import lm_eval.models  # noqa: F401
from lm_eval.api.registry import model_registry

__version__ = "0.1.0"
__all__ = ["DiffusionLM", "load_model", "task_manager", "__version__"]

model_registry.register("illada", target="illada_eval.adapter:DiffusionLM")


def __getattr__(name: str):
    if name == "DiffusionLM":
        from illada_eval.adapter import DiffusionLM

        return DiffusionLM
    if name == "load_model":
        from illada_eval.model import load_model

        return load_model
    if name == "task_manager":
        from illada_eval.task_index import task_manager

        return task_manager
    raise AttributeError(f"module 'illada_eval' has no attribute {name!r}")
