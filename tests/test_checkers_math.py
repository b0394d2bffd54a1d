"""Math answer extraction and equivalence on tables of known equal and unequal pairs."""
from __future__ import annotations

import pytest

from illada_eval.checkers.math import extract_answer, extract_last_number, is_equiv, normalize_answer

EQUAL = [
    ("\\frac{1}{2}", "0.5"),
    ("1/2", "0.5"),
    ("\\frac{1}{2}", "1/2"),
    ("\\dfrac{1}{2}", "\\frac12"),
    ("\\tfrac{3}{4}", "0.75"),
    ("-\\frac{1}{2}", "\\frac{-1}{2}"),
    ("3", "3.0"),
    ("5.", "5"),
    ("\\sqrt{2}", "sqrt(2)"),
    ("\\sqrt2", "\\sqrt{2}"),
    ("\\sqrt{8}", "2\\sqrt{2}"),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}"),
    ("\\pi/2", "\\frac{\\pi}{2}"),
    ("x^2+2x+1", "(x+1)^2"),
    ("x**2", "x^2"),
    ("\\left(1,2\\right)", "(1, 2)"),
    ("(1,2,3)", "(1, 2, 3)"),
    ("[1,2)", "[1, 2)"),
    ("(-\\infty, 3]", "(-\\infty,3]"),
    ("\\{1,2\\}", "\\{2,1\\}"),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ("90^\\circ", "90"),
    ("90^{\\circ}", "90"),
    ("\\$5", "5"),
    ("\\$1,000.50", "1000.5"),
    ("1,000", "1000"),
    ("1{,}000", "1000"),
    ("1,000,000", "10^6"),
    ("10\\%", "10"),
    ("5\\text{ cm}", "5"),
    ("12 \\text{ inches}", "12"),
    ("2 dollars", "2"),
    ("x = 5", "5"),
    ("k=3", "3"),
    ("\\text{Monday}", "Monday"),
    ("\\text{(A)}", "A"),
    ("\\boxed{7}", "7"),
    ("\\frac{1}{3}", "0.3333333"),  # rounding the reference to 7 places is accepted
]

UNEQUAL = [
    ("2", "3"),
    ("-5", "5"),
    ("1000000", "1000001"),
    ("0.5", "0.50001"),
    ("\\frac{1}{3}", "0.333"),
    ("\\pi", "3.14159"),
    ("\\sqrt{2}", "2"),
    ("5", "5\\sqrt{2}"),
    ("2x", "2"),
    ("2 x", "2"),
    ("3\\pi", "3"),
    ("x+1", "x-1"),
    ("x", "y"),
    ("[1,2)", "(1,2)"),
    ("(1,2)", "(2,1)"),
    ("(1,2,3)", "(1,3,2)"),
    ("1,2", "1.2"),
    ("\\infty", "-\\infty"),
    ("\\text{Monday}", "\\text{Tuesday}"),
    ("A", "B"),
    ("2^{10}", "1000"),
    ("10\\%", "0.1"),  # percent signs are dropped, as in minerva's normalisation
    ("", "0"),
]


@pytest.mark.parametrize("a, b", EQUAL)
def test_equal_pairs_agree_both_ways(a, b):
    assert is_equiv(a, b) and is_equiv(b, a)


@pytest.mark.parametrize("a, b", UNEQUAL)
def test_unequal_pairs_stay_unequal_both_ways(a, b):
    assert not is_equiv(a, b) and not is_equiv(b, a)


def test_missing_answers_are_never_equal():
    assert not is_equiv(None, "1") and not is_equiv("1", None) and not is_equiv(None, None)


def test_a_hostile_answer_cannot_stall_the_evaluation():
    """2^(10^10) makes sympy compute a 3-gigabit integer in C: only killing the worker stops it."""
    assert not is_equiv("2^{10^{10}}", "1", timeout=1.0)
    assert is_equiv("\\frac{2}{4}", "\\sqrt{0.25}")  # a fresh worker serves the next answer


def test_python_in_an_answer_is_not_evaluated(tmp_path):
    marker = tmp_path / "evaluated"
    payload = f"__import__('os').mkdir({str(marker)!r})"
    assert not is_equiv(payload, "0")
    assert not marker.exists()


@pytest.mark.parametrize("text, answer", [
    ("So the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("First \\boxed{5}, then corrected: \\boxed{\\{1, \\{2\\}\\}}", "\\{1, \\{2\\}\\}"),
    ("\\fbox{x+1}", "x+1"),
    ("thus \\boxed 5$", "5"),
    ("Final Answer: The final answer is $12$. I hope it is correct.", "12"),
    ("The final answer is \\frac{3}{4}.", "\\frac{3}{4}"),
    ("Janet sells 16 - 3 - 4 = 9 eggs.\n#### 18", "18"),
    ("He pays 1,200 dollars.\n#### 1,200", "1,200"),
    ("no committed answer, only 3 and 4.5", None),
    ("cut off mid-answer \\boxed{\\frac{1}{", None),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_boxed_wins_over_other_forms():
    assert extract_answer("The final answer is 3.\n#### 4\n\\boxed{5}") == "5"


@pytest.mark.parametrize("text, number", [
    ("only 3 and 4.5", "4.5"),
    ("total: 1,234,567 apples", "1234567"),
    ("it drops to -7 degrees", "-7"),
    ("no digits here", None),
])
def test_extract_last_number(text, number):
    assert extract_last_number(text) == number


@pytest.mark.parametrize("raw, normal", [
    ("\\left( \\dfrac{1}{2}, 3 \\right)", "(\\frac{1}{2},3)"),
    ("$x = 1,000$", "1000"),
    ("\\$ 4.50", "4.50"),
    ("45^\\circ", "45"),
])
def test_normalize_answer(raw, normal):
    assert normalize_answer(raw) == normal
