"""The demo curriculum: small skills in a prompt/answer text format, generated deterministically.

Each example is a prompt such as ``"rev abc="`` and an answer such as ``"cba"`` (the trainer
appends EOS). Training draws from :func:`training_examples`; the sanity tasks draw from
:func:`sanity_docs`. A fixed hash of the prompt sends one prompt in ten to the held-out side, and
the training generator never emits those, so the sanity tasks test prompts the model never saw.
"""
from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Callable

LETTERS = string.ascii_lowercase[:12]  # a small alphabet keeps the skills learnable by a tiny model
HELD_OUT_SEED = 1234
NUM_CHOICES = 4


def _word(rng: random.Random, low: int = 3, high: int = 6) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(low, high)))


def _increment(rng: random.Random) -> tuple[str, str]:
    """Multi-digit increment: the last digit goes up by one and a carry runs through trailing 9s."""
    number = rng.randint(0, 10 ** rng.randint(1, 4) - 1)
    return f"inc {number}=", str(number + 1)


def _copy(rng: random.Random) -> tuple[str, str]:
    word = _word(rng)
    return f"copy {word}=", word


def _reverse(rng: random.Random) -> tuple[str, str]:
    word = _word(rng)
    return f"rev {word}=", word[::-1]


def _sort(rng: random.Random) -> tuple[str, str]:
    word = _word(rng)
    return f"sort {word}=", "".join(sorted(word))


def _continue(rng: random.Random) -> tuple[str, str]:
    """A repeating unit shown for a while; the answer is the next ``len(unit)`` characters."""
    unit = _word(rng, 2, 3)
    shown = rng.randint(2 * len(unit), 3 * len(unit))
    stream = unit * 8
    return f"next {stream[:shown]}=", stream[shown : shown + len(unit)]


SKILLS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "inc": _increment,
    "copy": _copy,
    "rev": _reverse,
    "sort": _sort,
    "next": _continue,
}


def is_held_out(prompt: str) -> bool:
    """One prompt in ten, fixed by a hash of its text (the same on every machine and run)."""
    return hashlib.blake2b(prompt.encode(), digest_size=2).digest()[0] % 10 == 0


def _check_skills(skills: tuple[str, ...]) -> None:
    unknown = [s for s in skills if s not in SKILLS]
    if unknown:
        raise ValueError(f"unknown synthetic skills {unknown}; known: {sorted(SKILLS)}")


def _examples(count: int, seed: int, skills: tuple[str, ...], held_out: bool):
    _check_skills(skills)
    rng = random.Random(seed)
    made = 0
    while made < count:
        skill = skills[made % len(skills)]
        prompt, answer = SKILLS[skill](rng)
        if is_held_out(prompt) == held_out:
            made += 1
            yield skill, prompt, answer


def training_examples(count: int, seed: int = 0, skills: tuple[str, ...] = tuple(SKILLS)) -> list[dict]:
    """``count`` records ``{"prompt", "response"}`` cycling through ``skills``; no held-out prompt."""
    return [
        {"prompt": prompt, "response": answer}
        for _, prompt, answer in _examples(count, seed, skills, held_out=False)
    ]


def _one_changed(answer: str, alphabet: str, rng: random.Random) -> str:
    position = rng.randrange(len(answer))
    return answer[:position] + rng.choice(alphabet) + answer[position + 1 :]


def _distractors(skill: str, answer: str, rng: random.Random) -> list[str]:
    """``NUM_CHOICES - 1`` wrong answers of the answer's length, so length never gives it away.

    Orderings for ``rev``/``sort`` (the callers guarantee three distinct letters, hence at least
    five wrong orderings), one changed character for the other skills.
    """
    wrong = [answer[::-1]] if skill == "rev" else []  # the word itself: the classic mistake
    while len(wrong) < NUM_CHOICES - 1:
        if skill in ("rev", "sort"):
            candidate = "".join(rng.sample(answer, len(answer)))
        else:
            candidate = _one_changed(answer, string.digits if skill == "inc" else LETTERS, rng)
        if candidate != answer and candidate not in wrong:
            wrong.append(candidate)
    return wrong


def sanity_docs(count: int, seed: int = HELD_OUT_SEED, skills: tuple[str, ...] = tuple(SKILLS)) -> list[dict]:
    """Held-out docs ``{"skill", "prompt", "answer", "choices", "label"}`` for the sanity tasks.

    ``choices`` holds the answer and wrong answers of the same length, in a random order;
    ``label`` is the answer's index. Words whose letters are all alike (no wrong ordering
    exists) are skipped.
    """
    rng = random.Random(seed)
    docs = []
    for skill, prompt, answer in _examples(10 * count + 100, seed, skills, held_out=True):
        if skill in ("rev", "sort") and len(set(answer)) < 3:
            continue  # too few distinct orderings for three distractors
        choices = _distractors(skill, answer, rng) + [answer]
        rng.shuffle(choices)
        docs.append(
            {"skill": skill, "prompt": prompt, "answer": answer, "choices": choices,
             "label": choices.index(answer)}
        )
        if len(docs) == count:
            return docs
    raise ValueError(f"could not make {count} sanity docs for skills {skills}")
