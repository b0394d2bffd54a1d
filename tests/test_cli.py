"""The ``illada-eval`` command in-process: a full run, its result file and table, the hf:
baseline, ``ls``, and the clear errors for what users get wrong."""
import json

import pytest
import torch

from illada_eval.cli import main
from illada_eval.evaluate import cache_prefix
from illada_eval.output import plan_output, write_results
from lm_eval_fixtures import checkpoint, one_torch_thread, tasks_dir  # noqa: F401  (fixtures)
from lm_eval_fixtures import COPY_DOCS, read_results, write_causal_checkpoint

ALL_TASKS = "toy_mc,toy_ll,toy_gen,toy_ppl"


def run_cli(*argv):
    return main([*map(str, argv)])


def test_full_run_writes_lm_eval_json_with_settings_and_speed(checkpoint, tasks_dir, tmp_path, capsys):
    results = {}
    for batch_size in (4, 2):
        output = tmp_path / f"run{batch_size}"
        code = run_cli("--model", checkpoint, "--tasks", ALL_TASKS, "--include-path", tasks_dir,
                       "--output", output, "--batch-size", batch_size, "--bootstrap-iters", 0,
                       "--log-samples", "--seed", 7)
        assert code == 0
        results[batch_size] = read_results(output)
    printed = capsys.readouterr().out
    data = results[4]

    assert set(data["results"]) == set(ALL_TASKS.split(","))
    assert all(f"|{task}" in printed for task in ALL_TASKS.split(","))
    assert "model calls (NFE)" in printed and "tokens/s" in printed
    assert data["config"]["model"] == "illada"
    assert data["config"]["model_args"]["pretrained"] == str(checkpoint)
    adapter = data["config"]["illada_adapter"]
    assert adapter["task_settings"]["toy_mc"]["scoring"] == "confidence"
    assert adapter["task_settings"]["toy_ll"] == {"scoring": "elbo", "mc_num": 4, "greedy": True}
    assert data["config"]["fewshot_seed"] == 7 and adapter["seed"] == 7
    block = data["illada_eval"]
    assert block["settings"]["batch_size"] == 4 and (block["preset"], block["protocol"]) == ("illada-base", "illada-base")
    assert block["lm_eval_version"] == "0.4.13"
    speed = block["speed"]
    assert speed["model_calls"] > 0 and speed["generated_tokens"] > 0 and speed["tokens_per_s"] > 0
    choices = sum(len(doc[1]) for doc in COPY_DOCS)
    assert speed["per_request_type"]["loglikelihood"]["requests"] == choices + len(COPY_DOCS)
    for task in ALL_TASKS.split(","):  # lm-eval's names, so its tools find them
        (samples,) = (tmp_path / "run4").rglob(f"samples_{task}_*.jsonl")
        assert len(samples.read_text().splitlines()) == (3 if task == "toy_ppl" else 4)
    assert data["model_name"] == str(checkpoint) and data["task_hashes"].keys() == set(ALL_TASKS.split(","))
    assert float(data["total_evaluation_time_seconds"]) > 0 and data["end_time"] >= data["start_time"]
    # same seed, other batch size: the same metrics
    for task in ALL_TASKS.split(","):
        assert results[2]["results"][task] == pytest.approx(data["results"][task], abs=1e-5)


def test_scoring_flag_overrides_every_tasks_likelihood_settings(checkpoint, tasks_dir, tmp_path, capsys):
    output = tmp_path / "ablation.json"
    code = run_cli("--model", checkpoint, "--tasks", "toy_mc,toy_ll", "--include-path", tasks_dir, "--output", output,
                   "--bootstrap-iters", 0, "--limit", 1, "--scoring", "scoring=elbo,mc_num=2")
    assert code == 0
    settings = read_results(output)["config"]["illada_adapter"]["task_settings"]
    assert settings["toy_mc"]["scoring"] == "elbo"  # its YAML says confidence
    assert settings["toy_mc"]["mc_num"] == settings["toy_ll"]["mc_num"] == 2
    with pytest.raises(SystemExit) as exit:
        run_cli("--model", checkpoint, "--tasks", "toy_mc", "--output", tmp_path, "--scoring", "steps=3")
    assert exit.value.code == 2 and "--scoring: unknown key 'steps'" in capsys.readouterr().err


def test_demo_model_scores_far_above_chance_on_its_sanity_tasks(tmp_path):
    output = tmp_path / "demo.json"
    code = run_cli("--model", "demo", "--tasks", "illada_sanity_mc,illada_sanity_mc_elbo,illada_sanity_gen",
                   "--limit", 40, "--batch-size", 16, "--bootstrap-iters", 0, "--output", output)
    assert code == 0
    results = read_results(output)["results"]
    # four answers per question (chance 25%); exact-match generation has chance near 0
    assert results["illada_sanity_mc"]["acc,none"] > 0.6
    assert results["illada_sanity_mc_elbo"]["acc,none"] > 0.6
    assert results["illada_sanity_gen"]["exact_match,none"] > 0.6


def test_hf_baseline_runs_through_lm_evals_own_backend(tasks_dir, tmp_path):
    model = write_causal_checkpoint(tmp_path / "llama")
    output = tmp_path / "hf.json"
    code = run_cli("--model", f"hf:{model}", "--tasks", "toy_mc,toy_gen", "--include-path", tasks_dir,
                   "--output", output, "--bootstrap-iters", 0, "--limit", 2)
    assert code == 0
    data = read_results(output)
    assert data["config"]["model"] == "hf"
    assert set(data["results"]) == {"toy_mc", "toy_gen"}
    # the sampler's keys were taken out before lm-eval's generate() saw them
    assert "block_length" not in data["configs"]["toy_gen"]["generation_kwargs"]
    assert data["n-samples"]["toy_gen"]["effective"] == 2


def test_ls_lists_presets_tasks_and_aliases(capsys):
    assert run_cli("ls") == 0
    out = capsys.readouterr().out
    assert "preset illada-base (= base):" in out and "preset illada-instruct (= instruct):" in out
    assert "preset llada-base:" in out and "llada_base_math" in out and "preset dream-instruct:" in out
    assert "illada_arc_challenge" in out and "arc-c" in out and "illada_instruct_mmlu_pro" in out
    assert "illada_sanity_mc" in out  # tasks outside the presets, found under tasks/


def error_of(capsys, *argv):
    assert run_cli(*argv) == 1
    return capsys.readouterr().err


def test_unknown_task_names_the_closest_ones(checkpoint, tasks_dir, tmp_path, capsys):
    err = error_of(capsys, "--model", checkpoint, "--tasks", "toy_mcc", "--include-path", tasks_dir,
                   "--output", tmp_path)
    assert "Unknown task 'toy_mcc'" in err and "toy_mc" in err


def test_a_malformed_task_file_is_named(tmp_path, capsys):
    (tmp_path / "broken.yaml").write_text("task: broken_task\ndataset_path: json\n  bad_indent: [1, 2\n")
    err = error_of(capsys, "--model", "demo", "--tasks", "broken_task", "--include-path", tmp_path,
                   "--output", tmp_path / "out")
    assert "Unknown task 'broken_task'" in err and f"{tmp_path / 'broken.yaml'}:" in err


def test_unknown_model_path_is_named(tmp_path, capsys):
    missing = tmp_path / "no_such_model"
    err = error_of(capsys, "--model", missing, "--tasks", "arc", "--output", tmp_path)
    assert str(missing) in err


def test_unwritable_output_fails_before_any_work(checkpoint, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    err = error_of(capsys, "--model", checkpoint, "--tasks", "arc", "--output", blocker / "runs")
    assert f"{blocker} is a file" in err and "--output-path" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_machine_without_it(checkpoint, tmp_path, capsys):
    err = error_of(capsys, "--model", checkpoint, "--device", "cuda", "--output", tmp_path)
    assert "CUDA is not available" in err and "--device cpu" in err


def test_cache_file_follows_the_settings_that_change_responses():
    args = {"pretrained": "m", "seed": 1, "batch_size": 4, "device": "cpu"}
    same = cache_prefix("c", args, {"t": {"mc_num": 8}}, None, {"t": False})
    assert same == cache_prefix("c", args | {"batch_size": 1, "device": "cuda"}, {"t": {"mc_num": 8}}, None, {"t": False})
    assert same != cache_prefix("c", args | {"seed": 2}, {"t": {"mc_num": 8}}, None, {"t": False})
    assert same != cache_prefix("c", args, {"t": {"mc_num": 16}}, None, {"t": False})
    assert same != cache_prefix("c", args, {"t": {"mc_num": 8}}, {"max_gen_toks": 4}, {"t": False})
    assert same != cache_prefix("c", args, {"t": {"mc_num": 8}}, None, {"t": True})
    assert cache_prefix(None, args, {}, None, {}) is None


def test_results_that_cannot_be_written_in_place_are_saved_to_the_temp_directory(tmp_path, monkeypatch):
    """The run is done by then: a results path that turns out unwritable must not lose it."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "temp"))
    (tmp_path / "temp").mkdir()
    plan = plan_output(str(tmp_path / "out"), "demo")
    plan.results.mkdir(parents=True)  # a directory where the file should go: the replace fails
    written = write_results(plan, {"results": {"task": {"acc,none": 0.5}}}, {"task": [{"doc_id": 0}]})
    assert written.parent.parent == tmp_path / "temp" and written.name == plan.results.name
    assert json.loads(written.read_text())["results"]["task"]["acc,none"] == 0.5
    assert json.loads(plan.samples("task").read_text()) == {"doc_id": 0}  # its own path was writable
    assert {p.name for p in plan.results.parent.iterdir()} == {plan.results.name, plan.samples("task").name}


def test_help_lists_every_subcommand_with_its_summary(capsys):
    from illada_eval.cli import SUBCOMMANDS

    assert run_cli("--help") == 0
    out = capsys.readouterr().out
    for name, (_, summary) in SUBCOMMANDS.items():
        assert name in out and summary.split()[0] in out, name


@pytest.mark.parametrize("argv", [["--help"], ["ls"], ["run", "--help"], ["data", "--help"],
                                  ["--model", "demo", "--limit", "0"]])
def test_help_ls_and_argument_errors_import_neither_torch_nor_lm_evals_tasks(argv):
    """What makes them answer at once (the times are in benchmarks/startup.py)."""
    import subprocess
    import sys

    code = ("import sys\nfrom illada_eval.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'datasets', 'lm_eval.tasks') if m in sys.modules)\n"
            "print('heavy:', heavy)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "heavy: []", done.stdout[-500:] + done.stderr[-500:]
