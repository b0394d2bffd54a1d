"""MMLU answered by generation: the option letter read from the reply, per protocol."""
from __future__ import annotations

from illada_eval.checkers.choice import answer_letter, first_option

LETTERS = "ABCD"


def opencompass_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """LLaDA-Instruct's protocol: the first option OpenCompass's reader finds in the reply."""
    return {"exact_match": float(first_option(results[0], LETTERS) == LETTERS[doc["answer"]])}


def letter_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """iLLaDA's protocol: the letter the reply commits to ("B", "B. Paris", "The answer is (B).")."""
    return {"exact_match": float(answer_letter(results[0], LETTERS) == LETTERS[doc["answer"]])}
