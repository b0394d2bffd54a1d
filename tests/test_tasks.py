"""The preset tasks: they build from the offline mirror, follow the paper's protocol, and score."""
from __future__ import annotations

from collections.abc import Callable

import datasets
import pytest
from lm_eval.api.model import LM
from lm_eval.evaluator import evaluate
from lm_eval.tasks import TaskManager

from illada_eval import data, presets
from illada_eval.registry import EXTRA_TASKS, get_protocol, protocol_of_task
from illada_eval.tasks import TASKS_DIR
from illada_eval.tasks.lm_eval_prompts import LM_EVAL_TASKS_DIR
from golden_prompts import assert_prompts_match_golden
from offline_mirror import mirror  # noqa: F401  (session fixture)

# the lm-eval folders whose tasks our groups reuse; indexing all of lm-eval takes 15-30 s here
LM_EVAL_FOLDERS = ("mmlu/default", "mmlu/generative", "bbh/cot_fewshot", "mmlu-redux/generative", "mmlu_pro", "gsm8k")

# documents per task, from the benchmarks' published sizes
DOCS = {
    "illada_mmlu": 14042, "illada_arc_challenge": 1172, "illada_hellaswag": 10042,
    "illada_gsm8k": 1319, "illada_math": 500, "illada_humaneval": 164, "illada_mbpp": 500,
    "illada_instruct_mmlu": 14042, "illada_instruct_gsm8k": 1319, "illada_instruct_math": 500,
    "illada_instruct_humaneval": 164, "illada_instruct_mbpp": 500,
    "illada_arc_easy": 2376, "illada_piqa": 1838, "illada_winogrande": 1267,
}

# the paper's protocol (models-and-methods.md section 5; LLaDA's shot counts):
# (subtasks, shots, likelihood scoring or (max length, block), chat template)
PROTOCOL = {
    "illada_mmlu": (57, 5, "elbo", False),
    "illada_bbh": (27, 3, (1024, 32), False),
    "illada_arc_challenge": (1, 0, "confidence", False),
    "illada_hellaswag": (1, 0, "confidence", False),
    "illada_gsm8k": (1, 4, (1024, 32), False),
    "illada_math": (1, 4, (1024, 32), False),
    "illada_humaneval": (1, 0, (512, 512), False),
    "illada_mbpp": (1, 3, (1024, 32), False),
    "illada_instruct_mmlu": (57, 0, (4, 4), True),
    "illada_instruct_mmlu_redux": (57, 0, (3, 3), True),
    "illada_instruct_mmlu_pro": (14, 0, (4096, 32), True),
    "illada_instruct_gsm8k": (1, 0, (2048, 32), True),
    "illada_instruct_math": (1, 0, (4096, 32), True),
    "illada_instruct_humaneval": (1, 0, (2048, 32), True),
    "illada_instruct_mbpp": (1, 0, (2048, 16), True),
}

MMLU_PRO_CATEGORIES = ("biology", "business", "chemistry", "computer science", "economics",
                       "engineering", "health", "history", "law", "math", "other", "philosophy",
                       "physics", "psychology")


def _fake_hub_dataset(path: str, name: str | None = None) -> datasets.DatasetDict:
    """Two questions in the schema of each Hub-only benchmark, so their tasks build offline."""
    if path == "SaylorTwift/bbh":
        rows = [{"input": f"{name} question {i}", "target": "True"} for i in range(2)]
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
    if path == "fxmarty/mmlu-redux-2.0-ok":
        rows = [{"question": f"{name} {i}?", "choices": ["a", "b", "c", "d"], "answer": i} for i in range(2)]
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
    if path == "TIGER-Lab/MMLU-Pro":
        def rows(split: str) -> list[dict]:
            return [{"question_id": i, "question": f"{c} {split} {i}?", "options": list("0123456789"),
                     "answer": "A", "answer_index": 0, "category": c, "src": "fake",
                     "cot_content": "A: Let's think step by step. It is 0. The answer is (A)."}
                    for i, c in enumerate(MMLU_PRO_CATEGORIES)]
        return datasets.DatasetDict({s: datasets.Dataset.from_list(rows(s)) for s in ("test", "validation")})
    if path == "EleutherAI/hendrycks_math":
        rows = [{"problem": f"{name} {i}?", "level": "Level 1", "type": name, "solution": f"So $\\boxed{{{i}}}$."}
                for i in range(2)]
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows), "train": datasets.Dataset.from_list(rows)})
    if path == "openai/gsm8k":
        rows = [{"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"} for i in range(6)]
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows), "train": datasets.Dataset.from_list(rows)})
    raise AssertionError(f"offline tasks must not go to the Hub, asked for {path} {name}")


@pytest.fixture(scope="session")
def task_manager() -> TaskManager:
    folders = [str(TASKS_DIR), *(str(LM_EVAL_TASKS_DIR / f) for f in LM_EVAL_FOLDERS)]
    return TaskManager(include_path=folders, include_defaults=False)


@pytest.fixture(scope="session")
def built_tasks() -> dict[str, dict]:
    """Tasks loaded once per session for the tests that only read them (HellaSwag alone takes 10 s)."""
    return {}


@pytest.fixture
def offline(mirror, monkeypatch):
    """Tasks read the mirror; a task that goes to the Hub gets two fake questions (Hub-only ones)."""
    monkeypatch.setenv(data.DATA_DIR_ENV, str(mirror))
    monkeypatch.setattr(datasets, "load_dataset", _fake_hub_dataset)


def _leaves(task_manager: TaskManager, name: str, cache: dict | None = None) -> dict:
    """The leaf tasks of ``name``; from ``cache`` when given (only for tests that do not change them)."""
    if cache is None:
        return task_manager.load([name])["tasks"]
    if name not in cache:
        cache[name] = task_manager.load([name])["tasks"]
    return cache[name]


def _first_context(task) -> str:
    task.build_all_requests(limit=1, rank=0, world_size=1)
    return task.instances[0].args[0]


def test_every_preset_task_is_known_to_lm_eval(task_manager):
    names = presets.our_tasks()
    assert names <= set(task_manager.all_tasks)
    assert set(PROTOCOL) == set(presets.preset_tasks("base")) | set(presets.preset_tasks("instruct"))


@pytest.mark.parametrize("name", sorted(DOCS))
def test_offline_task_builds_its_requests_from_the_mirror(task_manager, offline, built_tasks, name):
    leaves = _leaves(task_manager, name, built_tasks)
    assert sum(len(task.eval_docs) for task in leaves.values()) == DOCS[name]
    for task in leaves.values():
        task.build_all_requests(limit=2, rank=0, world_size=1)
        expected = "loglikelihood" if task.OUTPUT_TYPE == "multiple_choice" else "generate_until"
        assert task.instances and {i.request_type for i in task.instances} == {expected}
        assert all(i.args[0] for i in task.instances)


def test_offline_selector_lists_exactly_the_tasks_that_build_offline():
    offline_names = presets.offline_tasks("base") + presets.offline_tasks("instruct")
    assert set(offline_names) == set(DOCS) - {entry.task for entry in EXTRA_TASKS}


@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_task_follows_the_paper_protocol(task_manager, offline, built_tasks, name):
    subtasks, shots, method, chat = PROTOCOL[name]
    leaves = _leaves(task_manager, name, built_tasks)
    assert len(leaves) == subtasks
    for task in leaves.values():
        config = task.config
        settings = config.metadata["illada"]
        assert (config.num_fewshot or 0) == shots
        assert settings["chat_template"] is chat
        assert settings["protocol"] == ("illada-instruct" if chat else "illada-base")
        if isinstance(method, str):
            assert task.OUTPUT_TYPE == "multiple_choice" and settings["scoring"] == method
            if method == "elbo":
                assert settings["mc_num"] == 1  # single-token answers: the bound is exact
        else:
            gen = config.generation_kwargs
            assert task.OUTPUT_TYPE == "generate_until" and "scoring" not in settings
            assert (gen["max_gen_toks"], gen["block_length"]) == method
            assert gen["steps"] == gen["max_gen_toks"]  # one token per step
            assert gen["do_sample"] is False and gen["temperature"] == 0.0
            assert {"block_length", "steps", "variable_length", "logits_eos_inf", "confidence_eos_eot_inf"} <= set(gen)


@pytest.mark.parametrize("entry", get_protocol("llada-base").tasks, ids=lambda entry: entry.task)
def test_llada_base_tasks_build_with_the_protocols_settings(task_manager, offline, built_tasks, entry):
    leaves = _leaves(task_manager, entry.task, built_tasks)
    for task in leaves.values():
        config = task.config
        assert config.metadata["illada"]["protocol"] == "llada-base"
        assert (config.num_fewshot or 0) == entry.num_fewshot
        if entry.scoring == "generation":
            kwargs = config.generation_kwargs
            assert (kwargs["max_gen_toks"], kwargs["block_length"], kwargs["variable_length"]) == (1024, 1024, False)
        else:
            assert config.metadata["illada"] | entry.scoring_settings == config.metadata["illada"]
    if entry.benchmark in ("math", "gsm8k", "arc_challenge"):
        task = next(iter(leaves.values()))
        context = _first_context(task)
        shots = {"math": "Problem:\n", "gsm8k": "Question: ", "arc_challenge": "Question: "}[entry.benchmark]
        assert context.count(shots) == entry.num_fewshot + 1, context
        if entry.benchmark == "math":  # the full set's answer is the solution's last \boxed{}
            assert task.instances[0].doc["answer"] == "0"


@pytest.mark.parametrize(("protocol", "benchmark", "shot_marker"), [
    ("dream-base", "gsm8k", "Q: "), ("dream-base", "math", "Problem:\n"), ("dream-instruct", "humaneval", None)])
def test_dream_tasks_build_with_dreams_sampler_settings(task_manager, offline, protocol, benchmark, shot_marker):
    entry = get_protocol(protocol).task_for(benchmark)
    (task,) = _leaves(task_manager, entry.task).values()
    kwargs = task.config.generation_kwargs
    assert (kwargs["remasking"], kwargs["steps"], kwargs["max_gen_toks"]) == ("entropy", entry.gen_length,
                                                                            entry.gen_length)
    assert task.config.metadata["illada"]["protocol"] == protocol
    if shot_marker:
        assert _first_context(task).count(shot_marker) == entry.num_fewshot + 1


# a few tasks of each protocol, word for word (the LLaDA-Instruct ones: test_tasks_llada_instruct.py)
GOLDEN_TASKS = ["illada_arc_challenge", "illada_gsm8k", "illada_math", "illada_mbpp", "illada_humaneval",
                "illada_instruct_gsm8k", "illada_instruct_math", "illada_instruct_mbpp",
                "llada_base_arc_challenge", "llada_base_gsm8k", "llada_base_math", "llada_base_mbpp",
                "dream_base_gsm8k", "dream_instruct_humaneval"]


@pytest.mark.parametrize("name", GOLDEN_TASKS)
def test_rendered_prompts_match_the_golden_files(task_manager, offline, name):
    protocol, _ = protocol_of_task(name)
    leaves = _leaves(task_manager, name)
    assert_prompts_match_golden(next(iter(leaves.values())), name, chat=protocol.chat_template)


@pytest.mark.parametrize(
    ("name", "marker", "shots"),
    [("illada_mmlu", "\nAnswer:", 5), ("illada_bbh", "Q: ", 3), ("illada_gsm8k", "Q: ", 4),
     ("illada_math", "Problem:\n", 4), ("illada_mbpp", "[BEGIN]", 3), ("illada_arc_challenge", "Question:", 0)],
)
def test_prompts_hold_the_configured_shots_and_follow_an_override(task_manager, offline, name, marker, shots):
    task = next(iter(_leaves(task_manager, name).values()))
    assert _first_context(task).count(marker) == shots + 1
    task.set_config(key="num_fewshot", value=2)  # what --num-fewshot does (lm-eval's simple_evaluate)
    assert _first_context(task).count(marker) == 3


def test_mmlu_shots_come_from_the_same_subject(task_manager, offline, built_tasks):
    task = _leaves(task_manager, "illada_mmlu", built_tasks)["mmlu_virology"]
    context = _first_context(task)
    assert context.startswith("The following are multiple choice questions (with answers) about virology.")
    for shot in data.load_benchmark("mmlu", "virology")["dev"]:
        assert shot["question"].strip() in context


def test_code_tasks_refuse_to_run_without_confirmation(task_manager, offline):
    for name in ("illada_humaneval", "illada_mbpp", "illada_instruct_humaneval", "illada_instruct_mbpp"):
        with pytest.raises(ValueError, match="unsafe"):
            evaluate(lm=None, task_dict=task_manager.load([name]), confirm_run_unsafe_code=False)
    for name in ("illada_gsm8k", "illada_math", "illada_arc_challenge"):
        assert not any(getattr(t, "UNSAFE_CODE", False) for t in _leaves(task_manager, name).values())


def test_resolve_tasks_aliases_and_presets():
    assert presets.resolve_tasks("bbh,arc", "base") == ["illada_bbh", "illada_arc_challenge"]
    assert presets.resolve_tasks("math", "base") == ["illada_math"]
    assert presets.resolve_tasks(["MATH", "mmlu-pro"], "instruct") == [
        "illada_instruct_math", "illada_instruct_mmlu_pro"]
    assert presets.resolve_tasks("", "instruct") == presets.preset_tasks("instruct")
    assert presets.resolve_tasks(None) == presets.preset_tasks("base")
    assert presets.resolve_tasks("piqa,winogrande", "base") == ["illada_piqa", "illada_winogrande"]
    assert presets.resolve_tasks("gsm8k,illada_gsm8k", "base") == ["illada_gsm8k"]
    lm_eval_names = {"sanity_mc", "mmlu", "bbh", "hellaswag", "gsm8k", "lambada_openai"}
    assert presets.resolve_tasks("hellaswag,sanity_mc,MMLU,bbh,lambada_openai", "base", lm_eval_names) == [
        "illada_hellaswag", "sanity_mc", "illada_mmlu", "illada_bbh", "lambada_openai"]
    assert "illada_bbh" not in presets.resolve_tasks("offline", "base")
    assert "illada_instruct_mmlu_pro" not in presets.resolve_tasks("offline", "instruct")


def test_resolve_tasks_errors_name_the_fix():
    with pytest.raises(ValueError, match="Did you mean hellaswag"):
        presets.resolve_tasks("hellaswg", "base")
    with pytest.raises(ValueError, match="--preset illada-base"):
        presets.resolve_tasks("arc", "instruct")
    with pytest.raises(ValueError, match="Protocols: illada-base, illada-instruct, llada-base"):
        presets.resolve_tasks("arc", "chat")


# ---------------------------------------------------------------- scoring, end to end

class CannedLM(LM):
    """Answers every generation request with a text made from the document."""

    def __init__(self, answer: Callable[[dict], str]):
        super().__init__()
        self.answer = answer

    def generate_until(self, requests):
        return [self.answer(request.doc) for request in requests]

    def loglikelihood(self, requests):
        raise AssertionError("generation tasks only")

    loglikelihood_rolling = loglikelihood


def _gsm8k_gold(doc: dict) -> str:
    return doc["answer"].split("####")[-1].strip()


SCORING_CASES = {
    "illada_gsm8k": (lambda d: f"Adding up gives it. The answer is {_gsm8k_gold(d)}.",
                     lambda d: "The answer is 987654321.", "exact_match"),
    "illada_instruct_math": (lambda d: f"Reasoning.\nThe final answer is $\\boxed{{{d['answer']}}}$",
                             lambda d: "The final answer is $\\boxed{\\frac{1}{987}}$", "exact_match"),
    "illada_math": (lambda d: f"Work.\nFinal Answer: The final answer is ${d['answer']}$. I hope it is correct.",
                    lambda d: "Final Answer: The final answer is $-987654$.", "exact_match"),
    "illada_humaneval": (lambda d: d["canonical_solution"], lambda d: "    return None\n", "pass@1"),
    "illada_instruct_humaneval": (lambda d: d["canonical_solution"] + "```\n", lambda d: "    pass\n```", "pass@1"),
    "illada_mbpp": (lambda d: d["code"], lambda d: "def nothing():\n    pass\n", "pass@1"),
    "illada_instruct_mbpp": (lambda d: d["code"] + "\n```\nDone.", lambda d: "x = 1\n```", "pass@1"),
}


@pytest.mark.parametrize("name", sorted(SCORING_CASES))
def test_generation_tasks_score_right_and_wrong_answers(task_manager, offline, name):
    checker = "code" if SCORING_CASES[name][2] == "pass@1" else "math"
    pytest.importorskip(f"illada_eval.checkers.{checker}", reason="the checkers are not in this tree yet")
    right, wrong, metric = SCORING_CASES[name]
    for answer, expected in ((right, 1.0), (wrong, 0.0)):
        out = evaluate(lm=CannedLM(answer), task_dict=task_manager.load([name]), limit=3,
                       bootstrap_iters=0, confirm_run_unsafe_code=True)
        assert out["results"][name][f"{metric},none"] == expected, answer
