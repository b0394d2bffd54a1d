"""The code checker on ordinary programs: verdicts, limits (canonical solutions: test_checkers_integrity)."""
from __future__ import annotations

import pytest

from illada_eval.checkers.code import CodeResult, check_many, check_program

ADD_PROMPT = 'def add(a, b):\n    """Return a + b."""\n'
ADD_TESTS = "\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n\ncheck(add)\n"


def test_verdicts_name_the_reason():
    cases = {
        "    return a + b\n": "passed",
        "    return a - b\n": "failed: AssertionError",
        "    return a +\n": "failed: SyntaxError",
        "    raise ValueError('no idea')\n": "failed: ValueError: no idea",
        "    return undefined_name\n": "failed: NameError",
    }
    results = check_many([ADD_PROMPT + body + ADD_TESTS for body in cases], timeout=5.0, workers=2)
    for (body, expected), result in zip(cases.items(), results):
        assert isinstance(result, CodeResult)
        assert result.status.startswith(expected), (body, result)
        assert result.passed == (expected == "passed")


def test_check_many_keeps_input_order():
    programs = [f"assert {i} % 3 != 0\n" for i in range(12)]
    results = check_many(programs, timeout=5.0, workers=3)
    assert [r.passed for r in results] == [i % 3 != 0 for i in range(12)]


def test_output_is_captured_as_a_tail():
    result = check_program("import sys\nprint('hello')\nprint('oops', file=sys.stderr)\n", timeout=5.0)
    assert result.passed and result.stdout == "hello" and result.stderr == "oops"


def test_ordinary_python_features_work_inside_the_sandbox():
    """What correct solutions use must keep working: stdlib, files in the work dir, threads,
    pickling classes defined by the program, reading stdin (empty), os.environ writes."""
    program = """
import os, pickle, tempfile, threading, math, collections, re
class Point:
    def __init__(self, x): self.x = x
assert pickle.loads(pickle.dumps(Point(3))).x == 3
with open("notes.txt", "w") as fh:
    fh.write("kept")
assert open("notes.txt").read() == "kept"
with tempfile.NamedTemporaryFile("w") as fh:
    fh.write("scratch")
results = []
threads = [threading.Thread(target=results.append, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
assert sorted(results) == [0, 1, 2, 3]
os.environ["MY_VAR"] = "1"
import sys
assert sys.stdin.read() == ""
assert math.isclose(math.pi, 3.14159, rel_tol=1e-5)
"""
    result = check_program(program, timeout=10.0)
    assert result.passed, result


def test_a_time_limit_gives_timed_out():
    result = check_program("while True:\n    pass\n", timeout=1.0)
    assert result.status == "timed out" and not result.passed


@pytest.mark.parametrize("limit, value", [("timeout", 0), ("memory_mb", 8), ("max_processes", 0), ("disk_mb", 0)])
def test_nonsense_limits_are_refused(limit, value):
    with pytest.raises(ValueError, match=limit):
        check_program("pass", **{limit: value})
