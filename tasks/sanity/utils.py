"""Sanity tasks: held-out prompts of the demo curriculum (illada_eval.train.synthetic).

The docs are generated, not downloaded: the same on every machine, offline, and never seen in
training (the curriculum holds one prompt in ten out by a hash of its text). A trained demo model
scores far above chance (25% for four choices, about 0% for exact-match generation); a broken
scorer or sampler shows at once.
"""
from __future__ import annotations

from typing import Any

import datasets

from illada_eval.train.synthetic import HELD_OUT_SEED, SKILLS, sanity_docs


def sanity_dataset(count: int = 200, seed: int = HELD_OUT_SEED, skills: list[str] | None = None,
                   **_task_metadata: Any) -> datasets.DatasetDict:
    """``custom_dataset`` hook: lm-eval calls it with the task's metadata and dataset_kwargs."""
    docs = sanity_docs(count, seed=seed, skills=tuple(skills or SKILLS))
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def exact_match(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """The generated answer, stripped of surrounding whitespace, equals the answer exactly."""
    return {"exact_match": float(results[0].strip() == doc["answer"])}
