"""HumanEval and MBPP: lm-eval's MBPP exemplars, and pass@1 by running each program in
illada_eval.checkers.code's sandbox (never through ``evaluate``'s code_eval, which needs the Hub;
imported inside the function, so the task YAMLs load wherever the checkers cannot)."""
from __future__ import annotations

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
