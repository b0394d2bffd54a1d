"""Few-shot prompts read from lm-eval's own task files, so our tasks use lm-eval's exact exemplars.

Some of those files cannot be imported here: MBPP's ``utils.py`` loads ``evaluate``'s code_eval
from the Hub at import time and minerva_math's asserts an antlr4 version we do not pin. So the
exemplars are read from the source without running it.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import lm_eval.tasks
from lm_eval.tasks._yaml_loader import load_yaml

LM_EVAL_TASKS_DIR = Path(lm_eval.tasks.__file__).resolve().parent


def lm_eval_task_config(relative_path: str) -> dict[str, Any]:
    """A task YAML of lm-eval (``!function`` tags left unresolved), e.g. ``gsm8k/gsm8k-cot.yaml``."""
    return load_yaml(LM_EVAL_TASKS_DIR / relative_path, resolve_func=False)


def lm_eval_returned_literal(relative_path: str, function: str) -> Any:
    """The literal that ``function`` in an lm-eval module returns, read without importing the module."""
    path = LM_EVAL_TASKS_DIR / relative_path
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            returns = [n for n in ast.walk(node) if isinstance(n, ast.Return)]
            if len(returns) == 1 and returns[0].value is not None:
                return ast.literal_eval(returns[0].value)
    raise ValueError(f"{path}: no function {function!r} returning a single literal")
