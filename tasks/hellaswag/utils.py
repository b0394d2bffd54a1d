"""HellaSwag in the columns of OpenCompass's hellaswagDataset_V2, answered by generation."""
from __future__ import annotations

import datasets
from lm_eval.tasks.hellaswag.utils import process_docs

from illada_eval.checkers.choice import first_option


def opencompass_docs(dataset: datasets.Dataset) -> datasets.Dataset:
    """``ctx``, ``A``-``D`` and the gold letter ``label``, as OpenCompass reads its hellaswag.jsonl.

    That file holds lm-eval's preprocessed documents (``query`` = "activity label: context",
    ``choices``, ``gold``); OpenCompass keeps the query after the first ": " (the context without
    its activity label). lm-eval's own preprocessing of the Hub rows gives the same fields."""
    processed = process_docs(dataset)

    def columns(doc: dict) -> dict:
        return {"ctx": doc["query"].split(": ", 1)[-1], **dict(zip("ABCD", doc["choices"])), "label": "ABCD"[doc["gold"]]}

    return processed.map(columns, remove_columns=processed.column_names)


def opencompass_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    return {"exact_match": float(first_option(results[0], "ABCD") == doc["label"])}
