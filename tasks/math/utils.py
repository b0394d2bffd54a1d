"""GSM8K and MATH: lm-eval's few-shot exemplars and answer checking by illada_eval.checkers.math
(imported inside the functions, so the task YAMLs load wherever the checkers cannot)."""
from __future__ import annotations

import re

from illada_eval.tasks.lm_eval_prompts import lm_eval_returned_literal, lm_eval_task_config


def gsm8k_fewshot_samples() -> list[dict]:
    """lm-eval's eight chain-of-thought exemplars (its gsm8k-cot task); ``first_n`` takes the first k."""
    return lm_eval_task_config("gsm8k/gsm8k-cot.yaml")["fewshot_config"]["samples"]


def math_fewshot_samples() -> list[dict]:
    """lm-eval's four Minerva exemplars (its minerva_math tasks)."""
    return lm_eval_returned_literal("minerva_math/utils.py", "list_fewshot_samples")


def _exact_match(predicted: str | None, gold: str) -> dict[str, float]:
    from illada_eval.checkers.math import is_equiv

    return {"exact_match": float(predicted is not None and is_equiv(predicted, gold))}


def gsm8k_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    from illada_eval.checkers.math import extract_answer, extract_last_number

    # the exemplars end in "The answer is N."; like lm-eval's flexible-extract, fall back to the
    # last number when no committed answer (boxed, "final answer is", "####") is found
    predicted = extract_answer(results[0]) or extract_last_number(results[0])
    return _exact_match(predicted, doc["answer"].split("####")[-1].strip().replace(",", ""))


def math_docs(docs):
    """MATH-500 rows carry the ``answer``; the full test set (hendrycks_math) only the solution,
    whose last ``\\boxed{}`` is the answer (as lm-eval's minerva_math reads it)."""
    from illada_eval.checkers.math import extract_answer

    if "answer" in docs.column_names:
        return docs
    return docs.map(lambda doc: {"answer": extract_answer(doc["solution"])})


def math_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    from illada_eval.checkers.math import extract_answer

    return _exact_match(extract_answer(results[0]), doc["answer"])


# ---------------------------------------------------------------- LLaDA-Instruct (OpenCompass)

def opencompass_gsm8k_answer(reply: str) -> str | None:
    """OpenCompass's gsm8k_postprocess: the last number before any "Question:" the model went on
    to write. Its pattern does not know thousands separators ("1,000" reads as "000")."""
    numbers = re.findall(r"-?\d+\.\d+|-?\d+", reply.split("Question:")[0])
    return numbers[-1] if numbers else None


def opencompass_gsm8k_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    # OpenCompass's Gsm8kEvaluator: the same string, or the same number within 1e-6
    predicted = opencompass_gsm8k_answer(results[0])
    gold = doc["answer"].split("#### ")[-1].replace(",", "").strip()
    try:
        correct = predicted == gold or abs(float(predicted) - int(gold)) < 1e-6
    except (TypeError, ValueError):
        correct = False
    return {"exact_match": float(correct)}


def boxed_answer_of(reply: str) -> str | None:
    """The answer of a reply to math_0shot_gen_11c4b5, as OpenCompass's math_postprocess_v2 reads
    it: the last ``\\boxed{...}`` ("\\boxed{{x}}" read as x); failing that, what follows "answer
    is" in the first sentence stating "final answer" or "answer is", else the first sentence."""
    from illada_eval.data import last_boxed

    answer = last_boxed(reply)
    if answer is not None:
        return answer[1:-1] if re.fullmatch(r"\{.*\}", answer, re.DOTALL) else answer
    sentences = reply.split(".")
    stated = [s for s in sentences if re.search("final answer|answer is", s.lower())]
    answer = re.split(r"(?:final )?answer is|final answer", (stated or sentences)[0], flags=re.IGNORECASE)[-1]
    return answer.strip(" :$\n") or None


def hendrycks_math_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    from illada_eval.checkers.math import extract_answer

    return _exact_match(boxed_answer_of(results[0]), extract_answer(doc["solution"]))
