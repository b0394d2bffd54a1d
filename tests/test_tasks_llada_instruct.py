"""The LLaDA-8B-Instruct column's tasks (OpenCompass protocol): their settings follow
protocols.md, their prompts are pinned word for word, and their answer readers behave as
OpenCompass's on tricky replies; the iLLaDA instruct MMLU reads the letter a reply commits to."""
from __future__ import annotations


import datasets
import pytest
import yaml
from lm_eval.evaluator import evaluate
from lm_eval.tasks import TaskManager

from illada_eval import data
from illada_eval.registry import MATH_SUBJECTS, protocol_of_task
from illada_eval.checkers.choice import answer_letter, first_option
from illada_eval.tasks import TASKS_DIR
from illada_eval.tasks.arc import utils as arc_utils
from illada_eval.tasks.code import utils as code_utils
from illada_eval.tasks.hellaswag import utils as hellaswag_utils
from illada_eval.tasks.lm_eval_prompts import LM_EVAL_TASKS_DIR
from illada_eval.tasks.math import utils as math_utils
from illada_eval.tasks.mmlu_pro import utils as mmlu_pro_utils
from golden_prompts import GOLDEN_DIR, assert_prompts_match_golden
from offline_mirror import mirror  # noqa: F401  (session fixture)
from test_tasks import MMLU_PRO_CATEGORIES, CannedLM


# protocols.md, LLaDA-8B-Instruct table: task -> (subtasks, shots, gen_length = steps, block,
# logits_eos_inf, confidence_eos_eot_inf)
PROTOCOL = {
    "llada_instruct_mmlu": (57, 5, 3, 3, False, False),
    "llada_instruct_mmlu_pro": (14, 0, 256, 256, False, False),
    "llada_instruct_hellaswag": (1, 0, 3, 3, False, False),
    "llada_instruct_arc_challenge": (1, 0, 512, 512, False, False),
    "llada_instruct_gsm8k": (1, 4, 512, 512, False, True),
    "llada_instruct_math": (7, 0, 512, 64, False, True),  # blocks of 64: Table 3's 42.2
    "llada_instruct_humaneval": (1, 0, 512, 512, True, False),
    "llada_instruct_mbpp": (1, 3, 256, 256, False, True),
}


def _hub_docs(path: str, name: str | None = None) -> datasets.DatasetDict:
    """Hand-made questions in the schema of the Hub-only datasets the instruct column reads."""
    if path == "TIGER-Lab/MMLU-Pro":
        rows = [{"question_id": 2 * i + k, "question": f"Which {c} option is number {k + 2}?", "category": c,
                 "options": [["first", "second", "N/A", "fourth"], ["first", "N/A", "third"]][k],
                 "answer": "BC"[k], "answer_index": k + 1, "cot_content": "", "src": "hand-made"}
                for i, c in enumerate(MMLU_PRO_CATEGORIES) for k in range(2)]
        return datasets.DatasetDict({s: datasets.Dataset.from_list(rows) for s in ("test", "validation")})
    if path == "EleutherAI/hendrycks_math":
        rows = [{"problem": f"{name}: what is $\\frac{{1}}{{2}} + \\frac{{1}}{{2}}$?", "level": "Level 1",
                 "type": name, "solution": "The halves add up to $\\boxed{1}$."},
                {"problem": f"{name}: solve $2x = 6$.", "level": "Level 2", "type": name,
                 "solution": "Divide by two: $x = \\boxed{3}$."}]
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
    raise AssertionError(f"offline tasks must not go to the Hub, asked for {path} {name}")


@pytest.fixture(scope="module")
def task_manager() -> TaskManager:
    # lm-eval's generative MMLU tasks: the iLLaDA instruct MMLU group builds on them
    return TaskManager(include_path=[str(TASKS_DIR), str(LM_EVAL_TASKS_DIR / "mmlu/generative")],
                       include_defaults=False)


@pytest.fixture
def offline(mirror, monkeypatch):  # noqa: F811
    monkeypatch.setenv(data.DATA_DIR_ENV, str(mirror))
    monkeypatch.setattr(datasets, "load_dataset", _hub_docs)


def _leaves(task_manager: TaskManager, name: str) -> dict:
    return task_manager.load([name])["tasks"]


# ---------------------------------------------------------------- settings

@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_task_follows_the_llada_instruct_protocol(task_manager, offline, name):
    subtasks, shots, length, block, logits_eos, confidence_eos = PROTOCOL[name]
    leaves = _leaves(task_manager, name)
    assert len(leaves) == subtasks
    for task in leaves.values():
        gen = task.config.generation_kwargs
        assert (task.config.num_fewshot or 0) == shots
        assert task.config.metadata["illada"]["protocol"] == "llada-instruct"
        assert task.config.metadata["illada"]["chat_template"] is True
        assert (gen["max_gen_toks"], gen["steps"], gen["block_length"]) == (length, length, block)
        assert (gen["logits_eos_inf"], gen["confidence_eos_eot_inf"]) == (logits_eos, confidence_eos)
        assert gen["variable_length"] is False and gen["until"] == []
        assert gen["do_sample"] is False and gen["temperature"] == 0.0


@pytest.mark.parametrize(("name", "split", "documents"), [
    ("llada_instruct_hellaswag", "validation", 10042),
    # OpenCompass's ARC_c_gen reads the dev split and drops the 3- and 5-option questions
    ("llada_instruct_arc_challenge", "validation", 295),
])
def test_multiple_choice_tasks_read_opencompass_documents(task_manager, offline, name, split, documents):
    (task,) = _leaves(task_manager, name).values()
    assert task.config.validation_split == split and task.config.test_split is None
    docs = list(task.eval_docs)
    assert len(docs) == documents
    # a full run scores as many documents as the registry expects (else it would count as partial)
    assert protocol_of_task(name)[1].size == documents
    assert {doc["label" if "hellaswag" in name else "answerKey"] for doc in docs} == set("ABCD")


def test_opencompass_documents_keep_its_columns_and_letters():
    hellaswag = datasets.Dataset.from_list([{
        "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he",
        "endings": ["is using wrap [title] to wrap skis.", "b", "c", "d"], "label": "3"}])
    (doc,) = hellaswag_utils.opencompass_docs(hellaswag)
    # lm-eval's preprocessing (capitalised ctx_b, "[title]" markers), the activity label dropped
    assert doc == {"ctx": "A man is sitting on a roof. He", "A": "is using wrap. to wrap skis.", "B": "b", "C": "c",
                   "D": "d", "label": "D"}
    arc = datasets.Dataset.from_list([
        {"id": "x", "question": "Which?", "choices": {"text": ["w", "x", "y", "z"], "label": ["1", "2", "3", "4"]},
         "answerKey": "3"},
        {"id": "y", "question": "Three?", "choices": {"text": ["w", "x", "y"], "label": ["A", "B", "C"]},
         "answerKey": "A"},
        {"id": "z", "question": "Five?", "choices": {"text": ["v", "w", "x", "y", "z"], "label": list("ABCDE")},
         "answerKey": "E"}])
    assert list(arc_utils.opencompass_docs(arc)) == [
        {"question": "Which?", "textA": "w", "textB": "x", "textC": "y", "textD": "z", "answerKey": "C"}]


def test_full_math_reads_every_subject_of_the_hub_set_and_math500_stays_apart(task_manager, offline):
    leaves = _leaves(task_manager, "llada_instruct_math")
    assert sorted(t.config.dataset_kwargs["subset"] for t in leaves.values()) == sorted(MATH_SUBJECTS)
    bench = data.BENCHMARKS["hendrycks_math"]
    assert bench.hub_path == "EleutherAI/hendrycks_math" and not bench.offline
    assert data.BENCHMARKS["math500"].hub_path != bench.hub_path


# ---------------------------------------------------------------- prompts, word for word

@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_rendered_prompts_match_the_golden_files(task_manager, offline, name):
    # what lm-eval's evaluator does under --chat-template on (evaluate.py sets both flags)
    assert_prompts_match_golden(next(iter(_leaves(task_manager, name).values())), name, chat=True)


def test_golden_prompts_hold_opencompass_turns():
    # the pinned text itself, checked against what the OpenCompass configs say
    mmlu = (GOLDEN_DIR / "llada_instruct_mmlu_0.txt").read_text()
    hint = "There is a single choice question about abstract algebra. Answer the question by replying A, B, C or D.\n"
    assert mmlu.count("<|user|>\n" + hint + "Question: ") == 5 and mmlu.count("\nAnswer: \n<|end of user|>") == 5
    assert mmlu.count("<|user|>\n" + hint + "Q: ") == 1 and mmlu.endswith("\nA: \n<|end of user|>\n<|assistant|>\n")
    gsm8k = (GOLDEN_DIR / "llada_instruct_gsm8k_0.txt").read_text()
    assert gsm8k.count("<|assistant|>\n") == 5 and gsm8k.count("\nThe answer is ") == 4
    hellaswag = (GOLDEN_DIR / "llada_instruct_hellaswag_0.txt").read_text()
    assert hellaswag.startswith("<|user|>\nA man is sitting on a roof. He\nQuestion: Which ending makes the most sense?\nA. ")
    assert hellaswag.endswith("\nYou may choose from 'A', 'B', 'C', 'D'.\nAnswer:\n<|end of user|>\n<|assistant|>\n")
    arc = (GOLDEN_DIR / "llada_instruct_arc_challenge_0.txt").read_text()
    assert arc.count("<|user|>\n") == 1 and arc.startswith("<|user|>\nQuestion: Juan and LaKeisha roll")
    assert arc.endswith("\nD. Record the details of the investigation.\nAnswer:\n<|end of user|>\n<|assistant|>\n")
    mbpp = (GOLDEN_DIR / "llada_instruct_mbpp_0.txt").read_text()
    # the config's last BOT turn ("[BEGIN]\n") is not part of the prompt: the model writes it
    assert mbpp.count("[BEGIN]") == 3 and mbpp.endswith("  \n\n<|end of user|>\n<|assistant|>\n")


# ---------------------------------------------------------------- answer readers

@pytest.mark.parametrize(("reply", "expected"), [
    ("B", "B"), (" B.\n", "B"), ("(C)", "C"), ("B. Paris", "B"), ("The answer is (B).", "B"),
    ("The correct answer is: D", "D"), ("Answer: C", "C"), ("答案是C", "C"), ("**D**", "D"),
    ("The", ""),  # a 3-token reply that never reaches the letter
    ("answer: b", ""),  # OpenCompass reads "b" and then finds no option in it
    ("A bit of both", "A"),  # its last resort is any option letter at all
    ("I'd say C, not A", "A"),  # a letter that ends the reply outranks the ones before it
    ("1) D, or maybe A too", "A"),  # " D," matches a rule whose group is the space, so it falls
    # through to the "1." rule, which keeps "D, or maybe A too": the first of "ABCD" in it wins
])
def test_first_option_reads_replies_as_opencompass(reply, expected):
    assert first_option(reply, "ABCD") == expected


@pytest.mark.parametrize(("reply", "expected"), [
    # HellaSwag's 3-token replies
    ("D", "D"), ("D.\n", "D"), ("D\n\n", "D"), (" (B", "B"), ("Ending", ""), ("A man", "A"),
    # ARC-C's 512-token replies (the whole canvas, text after an EOS included)
    ("The correct answer is B. Option A is wrong because plants need light.", "B"),
    ("Plants need light, so A and C fail. Thus the answer is D", "D"),
    ("Sunlight matters most.\nAnswer: C\nQuestion: Which gas do plants release?\nA. Oxygen", "C"),
    # " B " matches a rule whose group is the space, so it falls through to the cushion: the first
    # option letter anywhere, the "A" of "All"
    ("All of these could matter, but B fits best.", "A"),
    ("答案是C。", "C"),
])
def test_first_option_on_hellaswag_and_arc_replies(reply, expected):
    assert first_option(reply, "ABCD") == expected


@pytest.mark.parametrize(("reply", "expected"), [
    ("B", "B"), ("(B)", "B"), ("B. Paris", "B"), ("B) 42", "B"), ("The answer is (B).", "B"),
    ("answer: c", None), ("Answer: C", "C"), ("The correct option is D.", "D"), ("**D**", "D"),
    ("A good choice would be C", "C"), ("A bit of both", None), ("Paris", None), ("I think D", "D"),
    ("B is right", "B"), ("", None), ("Option A is wrong; the answer is C.", "C"),
    ("The correct choice is (D), not A", "D"),
])
def test_answer_letter_takes_the_letter_the_reply_commits_to(reply, expected):
    assert answer_letter(reply) == expected


@pytest.mark.parametrize(("reply", "expected"), [
    ("3 + 4 = 7. The answer is 7\n", "7"),
    ("The answer is 12\n\nQuestion: Tom has 5 apples and 99 pears.", "12"),  # the next question is cut off
    ("It costs -2.50 dollars", "-2.50"),
    ("The answer is 1,000", "000"),  # OpenCompass's pattern knows no thousands separator
    ("no number here", None),
])
def test_gsm8k_answer_is_the_last_number_before_a_new_question(reply, expected):
    assert math_utils.opencompass_gsm8k_answer(reply) == expected


def test_gsm8k_scoring_compares_numbers():
    doc = {"answer": "Work.\n#### 1,200"}
    assert math_utils.opencompass_gsm8k_process_results(doc, ["So 1200.0"]) == {"exact_match": 1.0}
    assert math_utils.opencompass_gsm8k_process_results(doc, ["So 1,200"]) == {"exact_match": 0.0}
    assert math_utils.opencompass_gsm8k_process_results(doc, ["no idea"]) == {"exact_match": 0.0}


@pytest.mark.parametrize(("reply", "expected"), [
    ("First $x=2$, so \\boxed{4}. Check: \\boxed{5}", "5"),
    ("\\boxed{{\\frac{1}{2}}}", "\\frac{1}{2}"),
    ("We add. The final answer is 9. Done", "9"),
    ("Adding gives it. So the answer is 12. Then more.", "12"),
    ("Seven. Or eight.", "Seven"),
])
def test_math_answer_follows_the_boxed_then_sentence_rules(reply, expected):
    assert math_utils.boxed_answer_of(reply) == expected


@pytest.mark.parametrize(("reply", "expected"), [
    ("Sure:\n```python\ndef f():\n    return 1\n```\nUse it:\n```python\nprint(f())\n```", "def f():\n    return 1\n"),
    ("```\n    return 1\n```", "    return 1\n"),
    ("    return 1\n", "    return 1\n"),  # no fence: the reply as it is
    ("```python\ndef f():\n    return 1\n", "```python\ndef f():\n    return 1\n"),  # never closed: kept whole
])
def test_humaneval_code_is_the_first_closed_fenced_block(reply, expected):
    assert code_utils.opencompass_humaneval_code(reply) == expected


@pytest.mark.parametrize(("reply", "expected"), [
    ("[BEGIN]\n 'def f(a):\r\n  return a' \n[DONE] \n\n Next task", "def f(a):\r\n  return a"),
    ("[BEGIN]\ndef f(a):\n    return a\n[DONE]", "def f(a):\n    return a"),
    ("[BEGIN]\n 'def f(a):\n    return a", "def f(a):\n    return a"),  # cut off before [DONE]
    ("Here:\n```python\ndef f(a):\n    return a\n```\nDone!", "def f(a):\n    return a"),
    ("[BEGIN]\n 'def f(a\\_b):\n    return a\\_b' \n[DONE]", "def f(a_b):\n    return a_b"),
])
def test_mbpp_code_is_read_as_opencompass_reads_it(reply, expected):
    assert code_utils.opencompass_mbpp_code(reply) == expected


def test_mmlu_pro_options_keep_their_letters_and_answer_needs_the_pattern():
    assert mmlu_pro_utils.options_str(["x", "N/A", "z"]) == "A. x\nC. z"
    assert mmlu_pro_utils.answer_from("Thinking... B is tempting.\nANSWER: C") == "C"
    assert mmlu_pro_utils.answer_from("answer : d") == "d"  # (?i): read, then never equal to a gold letter
    assert mmlu_pro_utils.answer_from("The answer is (C)") == ""


# ---------------------------------------------------------------- scoring, end to end

def _letter(doc: dict, shift: int = 0) -> str:
    return "ABCD"[(doc["answer"] + shift) % 4]


def _math_gold(doc: dict) -> str:
    return doc["solution"].split("\\boxed{")[1].split("}")[0]


SCORING_CASES = {
    "llada_instruct_mmlu": (lambda d: _letter(d) + ".", lambda d: _letter(d, 1)),
    "llada_instruct_mmlu_pro": (lambda d: f"It is {d['options'][d['answer_index']]}.\nANSWER: {d['answer']}",
                                lambda d: "ANSWER: A"),
    "llada_instruct_gsm8k": (lambda d: f"Adding up. The answer is {d['answer'].split('#### ')[-1]}\n\nQuestion: 5 and 7?",
                             lambda d: "The answer is 987654321"),
    "llada_instruct_math": (lambda d: f"Hence $\\boxed{{{_math_gold(d)}}}$.", lambda d: "Hence $\\boxed{\\frac{1}{987}}$."),
    "llada_instruct_humaneval": (
        lambda d: f"Here:\n```python\n{d['prompt']}{d['canonical_solution']}```\nFor example:\n```python\nprint(0)\n```",
        lambda d: "```python\ndef nothing():\n    pass\n```"),
    "llada_instruct_hellaswag": (lambda d: d["label"] + ".\n", lambda d: "ABCD"[("ABCD".index(d["label"]) + 1) % 4]),
    "llada_instruct_arc_challenge": (
        lambda d: f"The correct answer is {d['answerKey']}. The others do not fit.",
        lambda d: f"The correct answer is {'ABCD'[('ABCD'.index(d['answerKey']) + 3) % 4]}."),
    "llada_instruct_mbpp": (lambda d: f"[BEGIN]\n '{d['code']}' \n[DONE] \n\n Next, more text",
                            lambda d: "[BEGIN]\n 'def nothing():\n    pass' \n[DONE]"),
    # the iLLaDA protocol's MMLU: letters in the forms replies take
    "illada_instruct_mmlu": (lambda d: f"The answer is ({_letter(d)}).", lambda d: f"{_letter(d, 2)}. Paris"),
}


@pytest.mark.parametrize("name", sorted(SCORING_CASES))
def test_tasks_score_a_right_and_a_wrong_reply(task_manager, offline, name):
    right, wrong = SCORING_CASES[name]
    metric = "pass@1" if name.endswith(("humaneval", "mbpp")) else "exact_match"
    filtered = "get_response" if name == "illada_instruct_mmlu" else "none"
    for reply, expected in ((right, 1.0), (wrong, 0.0)):
        out = evaluate(lm=CannedLM(reply), task_dict=task_manager.load([name]), limit=1,
                       bootstrap_iters=0, confirm_run_unsafe_code=True)
        assert out["results"][name][f"{metric},{filtered}"] == expected, (name, reply)
