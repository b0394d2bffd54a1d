"""Answer checkers: sandboxed code execution (HumanEval, MBPP) and math answer equivalence.

See docs/sandbox.md for what the code sandbox isolates and what it does not.
"""
from illada_eval.checkers.code import CodeResult, Program, SandboxError, check_many, check_program
from illada_eval.checkers.math import extract_answer, extract_last_number, is_equiv, normalize_answer

__all__ = [
    "CodeResult", "Program", "SandboxError", "check_many", "check_program",
    "extract_answer", "extract_last_number", "is_equiv", "normalize_answer",
]
