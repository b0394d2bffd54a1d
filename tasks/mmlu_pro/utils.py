"""MMLU-Pro as OpenCompass reads it: one category per task, the options as lettered lines, and the
answer letter taken from an "ANSWER: X" line (OpenCompass's match_answer_pattern)."""
from __future__ import annotations

import re
from typing import Any

import datasets

from illada_eval.data import load_benchmark

LETTERS = "ABCDEFGHIJKLMNOP"
# OpenCompass's answer_pattern of mmlu_pro_0shot_cot_gen_08c1de; (?i) also lets a lowercase letter
# through, which then never equals the gold letter
ANSWER_PATTERN = re.compile(r"(?i)ANSWER\s*:\s*([A-P])")


def options_str(options: list[str]) -> str:
    """"A. first\\nB. second ..."; "N/A" padding options are left out and keep their letter."""
    return "".join(f"{LETTERS[i]}. {option}\n" for i, option in enumerate(options) if option != "N/A").strip()


def category_dataset(benchmark: str, category: str, **_task_metadata: Any) -> datasets.DatasetDict:
    """``custom_dataset`` hook: the questions of one category, with ``options_str`` added."""
    splits = load_benchmark(benchmark)
    return datasets.DatasetDict({
        name: split.filter(lambda doc: doc["category"] == category).map(
            lambda doc: {"options_str": options_str(doc["options"])})
        for name, split in splits.items()
    })


def answer_from(reply: str) -> str:
    match = ANSWER_PATTERN.search(reply)
    return match.group(1) if match else ""


def opencompass_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    return {"exact_match": float(answer_from(results[0]) == doc["answer"])}
