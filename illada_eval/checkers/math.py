"""Math answer checking: minerva-style answer extraction and sympy-based equivalence.

``extract_answer`` reads the answer a model committed to (last ``\\boxed{...}``, else
"The final answer is X", else GSM8K's "#### X"); ``extract_last_number`` is the lenient
fallback some protocols add. ``is_equiv`` decides whether two answers are the same
mathematical object: cheap string and exact-number checks first, then math_verify (sympy) in a
separate worker process with a time limit, because sympy can run for ever on hostile input
(``2^{10^{10}}``) in C code that no signal interrupts. A comparison that runs out of time is
"not equal"; the worker is killed and a fresh one serves the next call.

This file doubles as that worker: ``python -I math.py`` serves comparisons on stdin/stdout. Only
the standard library is imported at the top, so starting it by path stays cheap; math_verify
and sympy load inside the worker only. math_verify reads LaTeX only here: its plain-expression
reader goes through sympy's ``parse_expr``, which evaluates Python.
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
from fractions import Fraction

__all__ = ["extract_answer", "extract_last_number", "normalize_answer", "is_equiv"]

# --------------------------------------------------------------------------- extraction

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_FINAL_ANSWER = re.compile(r"final answer is[:\s]*(.+?)(?:\.?\s*I hope it is correct|$)",
                           re.IGNORECASE | re.MULTILINE)
_GSM8K_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+")


def extract_answer(text: str) -> str | None:
    """The answer a solution committed to, or None.

    Looks for, in order: the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces kept),
    the last "The final answer is X" (minerva: "... is $X$. I hope it is correct."), and the last
    GSM8K-style "#### X" line."""
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    for pattern in (_FINAL_ANSWER, _GSM8K_ANSWER):
        matches = pattern.findall(text)
        if matches:
            answer = matches[-1].strip().rstrip(".").strip().strip("$").strip()
            return answer or None
    return None


def extract_last_number(text: str) -> str | None:
    """The last number in ``text`` (thousands separators removed), or None."""
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


def _last_boxed(text: str) -> str | None:
    start = max(text.rfind(command) for command in _BOX_COMMANDS)
    if start < 0:
        return None
    rest = text[start:].split("{", 1)
    head = rest[0]
    if head.startswith("\\boxed ") and "\\" not in head[1:]:  # "\boxed 5" without braces
        return head[len("\\boxed "):].split("$")[0].strip() or None
    if len(rest) < 2:
        return None
    depth, body = 1, rest[1]
    for index, char in enumerate(body):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return body[:index].strip()
    return None  # unbalanced: the answer was cut off


# --------------------------------------------------------------------------- normalisation

_REMOVED = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "~", "\\displaystyle",
            "^{\\circ}", "^\\circ", "\\circ", "°", "\\degree", "\\$", "$", "\\%", "%", "{,}")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|mbox|mathrm|operatorname)\s*\{([^{}]*)\}")
_UNIT_WORDS = re.compile(r"^(?P<value>[-+]?[\d.,/]+)(?:\s+[a-zA-Z]{2,}\.?)+(?:\^\{?\d\}?)?$")
_VARIABLE_EQUALS = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*(?P<value>[^=]+)$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def normalize_answer(answer: str) -> str:
    """A canonical spelling of an answer for string comparison: delimiters, spacing macros,
    ``\\dfrac``, degrees, dollars, percent, units in ``\\text{}``, "x =" and thousands
    separators removed."""
    text = answer.strip()
    boxed = _last_boxed(text)
    if boxed is not None and text.startswith(_BOX_COMMANDS):
        text = boxed
    for opening, closing in (("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(opening) and text.endswith(closing):
            text = text[len(opening):-len(closing)]
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("**", "^")
    for token in _REMOVED:
        text = text.replace(token, "")
    text = re.sub(r"(?<!\\)\\ ", " ", text)  # "\ " is a space, "\\ " a row break
    # \text{...}: a unit after a quantity is dropped, otherwise the words are kept
    outside = _TEXT_COMMAND.sub("", text)
    is_unit = bool(re.search(r"\d", outside))
    text = _TEXT_COMMAND.sub(lambda m: "" if is_unit and m.group(1).strip().isalpha() else m.group(1), text)
    text = text.strip().rstrip(".").strip()
    for pattern in (_UNIT_WORDS, _VARIABLE_EQUALS):
        match = pattern.match(text)
        if match:
            text = match.group("value").strip()
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    return re.sub(r"\s+", "", text)


# --------------------------------------------------------------------------- equivalence

_EXACT_NUMBER = re.compile(r"^(-?)(?:(\d+(?:\.\d+)?|\.\d+)|(\d+)/(\d+)|\\frac\{(-?\d+)\}\{(\d+)\})$")


def is_equiv(a: str | None, b: str | None, timeout: float = 5.0) -> bool:
    """Whether answers ``a`` (the reference) and ``b`` denote the same mathematical object.

    ``\\frac{1}{2}``, ``0.5`` and ``1/2`` agree; so do ``\\sqrt{2}`` and ``sqrt(2)``, ``(1,2)``
    with spacing variants, intervals, sets and expressions sympy can prove equal. Anything that
    cannot be parsed or compared within ``timeout`` seconds counts as not equal."""
    if a is None or b is None:
        return False
    left, right = normalize_answer(a), normalize_answer(b)
    if not left or not right:
        return False
    if left == right:
        return True
    exact = _compare_exact_numbers(left, right)
    if exact is not None:
        return exact
    return _WORKER.equivalent(left, right, timeout)


def _exact_number(text: str) -> tuple[Fraction, bool] | None:
    """(value, is_integer) for plain integers, decimals and integer fractions; None otherwise.
    Length-bounded: Fraction of a huge literal is itself a denial of service."""
    match = _EXACT_NUMBER.match(text) if len(text) <= 40 else None
    if match is None:
        return None
    sign, decimal, numerator, denominator, frac_numerator, frac_denominator = match.groups()
    if decimal is not None:
        value = Fraction(decimal)
    elif numerator is not None:
        value = Fraction(int(numerator), int(denominator)) if int(denominator) else None
    else:
        value = Fraction(int(frac_numerator), int(frac_denominator)) if int(frac_denominator) else None
    if value is None:
        return None
    return (-value if sign else value), decimal is not None and "." not in decimal


def _compare_exact_numbers(left: str, right: str) -> bool | None:
    """True/False when both are exact numbers and that settles it; None to ask sympy.
    Unequal decimals go on to math_verify, which accepts rounding (``0.3333333`` vs 1/3)."""
    parsed = _exact_number(left), _exact_number(right)
    if None in parsed:
        return None
    (value_a, integer_a), (value_b, integer_b) = parsed
    if value_a == value_b:
        return True
    return False if integer_a and integer_b else None


class _SympyWorker:
    """One long-lived worker process (this file run as a script), killed when a call overruns.

    Thread-safe; the first call pays the start-up (importing sympy and math_verify), which is
    not counted against the comparison's time limit."""

    _START_TIMEOUT_S = 120.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def equivalent(self, left: str, right: str, timeout: float) -> bool:
        with self._lock:
            proc = self._running()
            try:
                proc.stdin.write(json.dumps([left, right]) + "\n")
                proc.stdin.flush()
                reply = self._readline(proc, timeout)
            except (OSError, ValueError):
                reply = None
            if reply is None:  # overran or died: never let one answer stall the evaluation
                self._kill()
                return False
            return reply == "1"

    def _running(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-B", os.path.abspath(__file__)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, start_new_session=True)
            if self._readline(self._proc, self._START_TIMEOUT_S) != "ready":
                self._kill()
                raise RuntimeError("the math checker's worker did not start: is math-verify "
                                   "installed? (pip install math-verify)")
        return self._proc

    @staticmethod
    def _readline(proc: subprocess.Popen, timeout: float) -> str | None:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        return line.strip() if line else None

    def _kill(self) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                stream.close()
            self._proc = None


_WORKER = _SympyWorker()


def _serve() -> None:
    """Worker loop: one JSON ``[reference, candidate]`` per line in, ``1`` or ``0`` out."""
    import logging

    from math_verify import LatexExtractionConfig, parse, verify

    logging.disable(logging.WARNING)  # math_verify warns that we handle time-outs ourselves
    latex_only = [LatexExtractionConfig()]
    print("ready", flush=True)
    for line in sys.stdin:
        reference, candidate = json.loads(line)
        try:
            gold = parse(f"${reference}$", latex_only, parsing_timeout=None)
            pred = parse(f"${candidate}$", latex_only, parsing_timeout=None)
            same = bool(gold and pred and verify(gold, pred, timeout_seconds=None))
        except Exception:
            same = False
        print("1" if same else "0", flush=True)


if __name__ == "__main__":
    _serve()
