"""The protocol registry: each published column's settings as its sources state them, the task
files and docs generated from it, the protocol card."""
from __future__ import annotations

import json

import pytest

from illada_eval import presets, protocol_card, task_files
from illada_eval.cli import main as cli_main
from illada_eval.registry import DATASETS, PROTOCOLS, get_protocol
from illada_eval.settings import GENERATION, GenerationSettings

GENERATION_NAMES = {setting.name for setting in GENERATION}

# (benchmark, dataset, shots, scoring, mc_num, cfg, (gen_length, block, steps, variable) or None, metric)
# transcribed from the sources (protocols.md, models-and-methods.md §5), not from the registry
REFERENCE = {
    "illada-base": [
        ("mmlu", "mmlu", 5, "elbo", 1, 0.0, None, "acc,none"),
        ("bbh", "bbh", 3, "generation", None, None, (1024, 32, 1024, True), "exact_match,get-answer"),
        ("arc_challenge", "arc_challenge", 0, "confidence", None, 0.0, None, "acc_norm,none"),
        ("hellaswag", "hellaswag", 0, "confidence", None, 0.0, None, "acc_norm,none"),
        ("gsm8k", "gsm8k", 4, "generation", None, None, (1024, 32, 1024, True), "exact_match,none"),
        ("math", "math500", 4, "generation", None, None, (1024, 32, 1024, True), "exact_match,none"),
        ("humaneval", "humaneval", 0, "generation", None, None, (512, 512, 512, False), "pass@1,none"),
        ("mbpp", "mbpp", 3, "generation", None, None, (1024, 32, 1024, True), "pass@1,none"),
    ],
    "illada-instruct": [
        ("mmlu", "mmlu", 0, "generation", None, None, (4, 4, 4, True), None),
        ("mmlu_redux", "mmlu_redux", 0, "generation", None, None, (3, 3, 3, True), None),
        ("mmlu_pro", "mmlu_pro", 0, "generation", None, None, (4096, 32, 4096, True), None),
        ("gsm8k", "gsm8k", 0, "generation", None, None, (2048, 32, 2048, True), None),
        ("math", "math500", 0, "generation", None, None, (4096, 32, 4096, True), None),
        ("humaneval", "humaneval", 0, "generation", None, None, (2048, 32, 2048, True), None),
        ("mbpp", "mbpp", 0, "generation", None, None, (2048, 16, 2048, True), None),
    ],
    # LLaDA-8B-Base: lm-eval, MC ELBO with mc_num 128 (1 for MMLU), no CFG in Table 1, fixed
    # length 1024 in one block with one token per step, the full MATH test set
    "llada-base": [
        ("mmlu", "mmlu", 5, "elbo", 1, 0.0, None, None),
        ("bbh", "bbh", 3, "generation", None, None, (1024, 1024, 1024, False), None),
        ("arc_challenge", "arc_challenge", 0, "elbo", 128, 0.0, None, None),
        ("hellaswag", "hellaswag", 0, "elbo", 128, 0.0, None, None),
        ("gsm8k", "gsm8k", 4, "generation", None, None, (1024, 1024, 1024, False), None),
        ("math", "hendrycks_math", 4, "generation", None, None, (1024, 1024, 1024, False), None),
        ("humaneval", "humaneval", 0, "generation", None, None, (1024, 1024, 1024, False), None),
        ("mbpp", "mbpp", 3, "generation", None, None, (1024, 1024, 1024, False), None),
    ],
    # LLaDA-8B-Instruct: OpenCompass configs, one block of gen_length with one token per step (MATH:
    # the block-diffusion row, 512 in blocks of 64, which gives Table 3's 42.2)
    "llada-instruct": [
        ("mmlu", "mmlu", 5, "generation", None, None, (3, 3, 3, False), "exact_match,none"),
        ("mmlu_pro", "mmlu_pro", 0, "generation", None, None, (256, 256, 256, False), "exact_match,none"),
        ("hellaswag", "hellaswag", 0, "generation", None, None, (3, 3, 3, False), "exact_match,none"),
        ("arc_challenge", "arc_challenge", 0, "generation", None, None, (512, 512, 512, False), "exact_match,none"),
        ("gsm8k", "gsm8k", 4, "generation", None, None, (512, 512, 512, False), "exact_match,none"),
        ("math", "hendrycks_math", 0, "generation", None, None, (512, 64, 512, False), "exact_match,none"),
        ("humaneval", "humaneval", 0, "generation", None, None, (512, 512, 512, False), "pass@1,none"),
        ("mbpp", "mbpp", 3, "generation", None, None, (256, 256, 256, False), "pass@1,none"),
    ],
}

# protocols.md, LLaDA-8B-Instruct table: benchmark -> (logits_eos_inf, confidence_eos_eot_inf); and
# the split each OpenCompass config reads
LLADA_INSTRUCT_EOS = {"mmlu": (False, False), "mmlu_pro": (False, False), "hellaswag": (False, False),
                      "arc_challenge": (False, False), "gsm8k": (False, True), "math": (False, True),
                      "humaneval": (True, False), "mbpp": (False, True)}
LLADA_INSTRUCT_SPLITS = {"hellaswag": "validation", "arc_challenge": "validation"}  # the others: test


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_protocol_settings_are_those_of_its_sources(name):
    protocol = get_protocol(name)
    assert [task.benchmark for task in protocol.tasks] == [row[0] for row in REFERENCE[name]]
    for benchmark, dataset, shots, scoring, mc_num, cfg, generation, metric in REFERENCE[name]:
        task = protocol.task_for(benchmark)
        where = f"{name} / {benchmark}"
        assert (task.dataset, task.num_fewshot, task.scoring) == (dataset, shots, scoring), where
        assert (task.mc_num, task.cfg_scale) == (mc_num, cfg), where
        if generation is None:
            assert task.generation_kwargs is None, where
            # eval_llada.py: cross-entropy in the model's dtype, is_check_greedy=False
            llada_elbo = name == "llada-base"
            assert task.scoring_settings.get("official_numerics", False) is llada_elbo, where
            assert task.scoring_settings.get("greedy", True) is not llada_elbo, where
        else:
            kwargs = task.generation_kwargs
            got = (kwargs["max_gen_toks"], kwargs["block_length"], kwargs["steps"], kwargs["variable_length"])
            assert got == generation, where
            assert kwargs["do_sample"] is False and kwargs["temperature"] == 0.0, where
            # LLaDA's own code takes confidences in the model's dtype; the iLLaDA protocols keep ours
            assert kwargs["official_numerics"] is name.startswith("llada"), where
        if metric is not None:
            assert task.metric == metric, where


# whether each column's own code keeps the text a model writes after an EOS (protocols.md, dream.md):
# LLaDA's eval_llada.py and its OpenCompass wrapper do; Dream's harness cuts at the first EOS; the
# iLLaDA columns (and Qwen's, under iLLaDA's tasks) stop at it
TEXT_AFTER_EOS = {"illada-base": False, "illada-instruct": False, "llada-base": True, "llada-instruct": True,
                  "dream-base": False, "dream-instruct": False, "qwen2.5-base": False, "qwen2.5-instruct": False}


def test_every_protocol_says_what_happens_to_text_after_an_eos():
    assert set(TEXT_AFTER_EOS) == set(PROTOCOLS)


@pytest.mark.parametrize("name", sorted(TEXT_AFTER_EOS))
def test_text_after_eos_is_kept_where_the_columns_own_code_keeps_it(name):
    generation = [task for task in get_protocol(name).tasks if task.scoring == "generation"]
    assert generation, name
    for task in generation:
        kwargs = task.generation_kwargs
        assert kwargs.get("keep_text_after_eos", False) is TEXT_AFTER_EOS[name], f"{name} / {task.benchmark}"
        # the adapter accepts the combination (keeping text after an EOS needs the fixed-length canvas)
        GenerationSettings(**{key: value for key, value in kwargs.items() if key in GENERATION_NAMES})
    card = protocol_card.card_rows(get_protocol(name))
    assert {row["keep_text_after_eos"] for row in card if row["scoring"] == "generation"} == {TEXT_AFTER_EOS[name]}


def test_llada_instruct_eos_options_and_splits_are_those_of_its_configs():
    protocol = get_protocol("llada-instruct")
    for task in protocol.tasks:
        where = f"llada-instruct / {task.benchmark}"
        assert (task.logits_eos_inf, task.confidence_eos_eot_inf) == LLADA_INSTRUCT_EOS[task.benchmark], where
        assert task.split == LLADA_INSTRUCT_SPLITS.get(task.benchmark, "test"), where
        assert task.until == () and protocol.chat_template, where
    # ARC_c_gen scores the 295 four-option questions of the 299 of ARC-Challenge's validation split
    assert protocol.task_for("arc_challenge").size == 295 and DATASETS["arc_challenge"].split_size("validation") == 299
    assert protocol.task_for("hellaswag").size == 10042
    # GPQA's prompt is not in llada-instruct-prompts.json: no task, and the card says so
    assert protocol.task_for("gpqa") is None and "gpqa" in protocol.unstated


# Dream's scripts (dream.md): (benchmark, shots, scoring, mc_num, (max_new_tokens, temperature) or None)
DREAM_REFERENCE = {
    "dream-base": (0.95, [
        ("mmlu", 5, "dream", 128, None), ("bbh", 3, "generation", None, (512, 0.0)),
        ("arc_challenge", 0, "dream", 128, None), ("hellaswag", 0, "dream", 128, None),
        ("gsm8k", 8, "generation", None, (256, 0.0)), ("math", 4, "generation", None, (512, 0.0)),
        ("humaneval", 0, "generation", None, (512, 0.2)), ("mbpp", 3, "generation", None, (512, 0.2)),
    ]),
    "dream-instruct": (0.9, [
        ("mmlu", 4, "generation", None, (128, 0.1)), ("mmlu_pro", 4, "generation", None, (128, 0.1)),
        ("gsm8k", 0, "generation", None, (256, 0.1)), ("math", 0, "generation", None, (512, 0.1)),
        ("humaneval", 0, "generation", None, (768, 0.1)),
    ]),
}


@pytest.mark.parametrize("name", sorted(DREAM_REFERENCE))
def test_dream_protocols_use_dreams_sampler_and_estimator(name):
    protocol = get_protocol(name)
    top_p, rows = DREAM_REFERENCE[name]
    assert [task.benchmark for task in protocol.tasks] == [row[0] for row in rows]
    for benchmark, shots, scoring, mc_num, generation in rows:
        task, where = protocol.task_for(benchmark), f"{name} / {benchmark}"
        assert (task.num_fewshot, task.scoring, task.mc_num) == (shots, scoring, mc_num), where
        if generation is not None:
            kwargs = task.generation_kwargs
            # diffusion steps = max_new_tokens, Dream's entropy order, nucleus sampling
            assert (kwargs["max_gen_toks"], kwargs["temperature"]) == generation, where
            assert (kwargs["steps"], kwargs["remasking"], kwargs["top_p"]) == (generation[0], "entropy", top_p), where
            assert "block_length" not in kwargs, where
    assert get_protocol(name).task_for("math").dataset == "hendrycks_math"  # Dream reports the full set


@pytest.mark.parametrize(("name", "runs"), [("qwen2.5-base", "illada-base"), ("qwen2.5-instruct", "illada-instruct")])
def test_qwen_columns_run_the_illada_prompts_and_shots_through_lm_eval_hf(name, runs):
    protocol, illada = get_protocol(name), get_protocol(runs)
    assert protocol.backend == "hf" and protocol.runs_tasks_of == runs
    assert presets.preset_tasks(name) == presets.preset_tasks(runs)
    for ours, theirs in zip(protocol.tasks, illada.tasks):
        assert (ours.task, ours.dataset, ours.num_fewshot, ours.metric) == (
            theirs.task, theirs.dataset, theirs.num_fewshot, theirs.metric)
        # an autoregressive model has no blocks, steps or Monte Carlo samples
        assert (ours.block_length, ours.steps, ours.mc_num) == (None, None, None)


def test_each_published_column_names_one_protocol():
    columns = [column for protocol in PROTOCOLS.values() for column in protocol.columns]
    assert len(columns) == len(set(columns))
    assert ("base", "LLaDA-8B-Base") in get_protocol("llada-base").columns
    assert get_protocol("base") is get_protocol("illada-base")  # the old preset names stay


def test_math_500_and_the_full_math_set_are_different_datasets():
    assert DATASETS["math500"].split_size("test") == 500 and DATASETS["math500"].offline
    assert DATASETS["hendrycks_math"].split_size("test") == 5000 and not DATASETS["hendrycks_math"].offline
    assert len(DATASETS["hendrycks_math"].subsets) == 7
    assert "llada_base_math" not in presets.offline_tasks("llada-base")
    assert "llada_base_gsm8k" not in presets.offline_tasks("llada-base")  # lm-eval's task reads the Hub


def test_generated_task_files_and_docs_are_up_to_date():
    files = task_files.all_files(task_files.TASKS_DIR.parent)
    stale = task_files.stale(files)
    assert stale == [], f"stale generated files {stale}: run python -m illada_eval.task_files"


def test_every_protocol_task_has_a_task_file():
    files = task_files.rendered_files()
    names = {path.stem for path in files}
    assert presets.our_tasks() <= names


def test_protocol_card_json_has_every_setting(capsys):
    assert cli_main(["protocol", "--preset", "llada-base", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    required = {"task", "benchmark", "source", "dataset", "split", "num_fewshot", "scoring", "mc_num", "cfg_scale",
                "gen_length", "block_length", "steps", "variable_length", "logits_eos_inf", "confidence_eos_eot_inf",
                "metric"}
    assert rows and all(required <= set(row) for row in rows)
    assert {(row["official_numerics"], row["greedy"]) for row in rows if row["scoring"] == "elbo"} == {(True, False)}
    math = next(row for row in rows if row["benchmark"] == "math")
    assert math["dataset"].startswith("EleutherAI/hendrycks_math") and math["gen_length"] == 1024


def test_a_task_that_turns_the_greedy_flag_off_gets_no_greedy_passes():
    from types import SimpleNamespace

    from illada_eval.task_setup import scoring_settings

    def task(output_type, illada):
        config = SimpleNamespace(metadata={"illada": illada}, output_type=output_type)
        return SimpleNamespace(config=config, get_config=lambda key: getattr(config, key))

    llada = get_protocol("llada-base").task_for("arc_challenge").scoring_settings
    assert llada["greedy"] is False and llada["official_numerics"] is True
    assert scoring_settings(task("loglikelihood", llada))["greedy"] is False
    assert scoring_settings(task("loglikelihood", {"scoring": "elbo"}))["greedy"] is True
    assert scoring_settings(task("multiple_choice", {"scoring": "elbo"}))["greedy"] is False  # nobody reads it


def test_protocol_card_table_and_unknown_preset(capsys):
    assert cli_main(["protocol", "--preset", "base"]) == 0
    out = capsys.readouterr().out
    assert "illada-base" in out and "illada_arc_challenge" in out and "| confidence |" in out
    with pytest.raises(SystemExit):
        protocol_card.main(["--preset", "lada-base"])
    assert "Did you mean llada-base" in capsys.readouterr().err


def test_dream_base_runs_with_dreams_bos_token_unless_model_args_say_otherwise():
    from types import SimpleNamespace

    from illada_eval.evaluate import backend_arguments

    args = SimpleNamespace(model="some/dream", model_args=None, batch_size=8, max_batch_size=None, dtype=None,
                           revision=None, seed=1, preset="dream-base")
    assert backend_arguments(args, "cpu")[1]["add_bos_token"] is True
    args.model_args = "add_bos_token=False"
    assert backend_arguments(args, "cpu")[1]["add_bos_token"] is False
    args.preset = "illada-base"
    args.model_args = None
    assert "add_bos_token" not in backend_arguments(args, "cpu")[1]
