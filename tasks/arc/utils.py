"""ARC in the columns of OpenCompass's ARCDataset, answered by generation."""
from __future__ import annotations

import datasets

from illada_eval.checkers.choice import first_option


def opencompass_docs(dataset: datasets.Dataset) -> datasets.Dataset:
    """``question``, ``textA``-``textD`` and the gold letter ``answerKey``, as OpenCompass's
    ARCDataset reads them: questions without exactly four options are dropped, and the answer is
    the letter of the gold option's position (some questions label their options 1-4)."""
    four = dataset.filter(lambda doc: len(doc["choices"]["label"]) == 4)

    def columns(doc: dict) -> dict:
        labels, texts = doc["choices"]["label"], doc["choices"]["text"]
        return {"question": doc["question"], **{f"text{letter}": text for letter, text in zip("ABCD", texts)},
                "answerKey": "ABCD"[labels.index(doc["answerKey"])]}

    return four.map(columns, remove_columns=four.column_names)


def opencompass_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    return {"exact_match": float(first_option(results[0], "ABCD") == doc["answerKey"])}
