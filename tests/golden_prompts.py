"""Rendered prompts pinned word for word in ``tests/golden/<task>_<doc>.txt``.

``ILLADA_UPDATE_GOLDEN=1`` rewrites the files (after an intended prompt change)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE_GOLDEN = "ILLADA_UPDATE_GOLDEN"


def visible_chat(messages: list[dict], add_generation_prompt: bool = True) -> str:
    """A chat template that shows each turn on lines of its own, so the golden files show which
    text is which turn."""
    turns = "".join(f"<|{m['role']}|>\n{m['content']}\n<|end of {m['role']}|>\n" for m in messages)
    return turns + ("<|assistant|>\n" if add_generation_prompt else "")


def assert_prompts_match_golden(task, name: str, chat: bool) -> None:
    """The first two documents' prompts of a built task equal ``<name>_0.txt`` and ``<name>_1.txt``
    (as lm-eval's evaluator renders them; with ``chat`` under a chat template, few-shot as turns)."""
    task.set_fewshot_seed(seed=1234)  # as lm-eval's evaluator does: random few-shot draws repeat
    chat_settings = dict(apply_chat_template=True, fewshot_as_multiturn=True, chat_template=visible_chat) if chat else {}
    task.build_all_requests(limit=2, rank=0, world_size=1, **chat_settings)
    assert len(task.instances) >= 2
    documents = list(dict.fromkeys(instance.doc_id for instance in task.instances))[:2]
    for index, doc_id in enumerate(documents):
        golden = GOLDEN_DIR / f"{name}_{index}.txt"
        prompt = next(instance.args[0] for instance in task.instances if instance.doc_id == doc_id)
        if os.environ.get(UPDATE_GOLDEN):
            golden.parent.mkdir(exist_ok=True)
            golden.write_bytes(prompt.encode())
        assert golden.is_file(), f"{golden} is missing; write it with {UPDATE_GOLDEN}=1"
        expected = golden.read_bytes().decode()
        if prompt != expected:
            at = next((i for i, (a, b) in enumerate(zip(prompt, expected)) if a != b), min(len(prompt), len(expected)))
            pytest.fail(f"{name} document {index}: the prompt differs from {golden.name} at character {at}: "
                        f"{prompt[at - 40:at + 40]!r} vs {expected[at - 40:at + 40]!r} "
                        f"(rewrite with {UPDATE_GOLDEN}=1 if the change is intended)")
