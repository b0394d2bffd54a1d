"""GSM8K and MATH: lm-eval's few-shot exemplars and answer checking by illada_eval.checkers.math."""
from __future__ import annotations

from illada_eval.tasks.lm_eval_prompts import lm_eval_returned_literal, lm_eval_task_config


def gsm8k_fewshot_samples() -> list[dict]:
    """lm-eval's eight chain-of-thought exemplars (its gsm8k-cot task); ``first_n`` takes the first k."""
    return lm_eval_task_config("gsm8k/gsm8k-cot.yaml")["fewshot_config"]["samples"]


def math_fewshot_samples() -> list[dict]:
    """lm-eval's four Minerva exemplars (its minerva_math tasks)."""
    return lm_eval_returned_literal("minerva_math/utils.py", "list_fewshot_samples")


def _exact_match(generation: str, gold: str) -> dict[str, float]:
    # imported here so that task YAMLs load even where the checkers are not importable yet
    from illada_eval.checkers.math import extract_answer, is_equiv

    predicted = extract_answer(generation)
    return {"exact_match": float(predicted is not None and is_equiv(predicted, gold))}


def gsm8k_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    gold = doc["answer"].split("####")[-1].strip().replace(",", "")
    return _exact_match(results[0], gold)


def math_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    return _exact_match(results[0], doc["answer"])
