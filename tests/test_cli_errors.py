"""What a user gets wrong on the command line: one clear message naming the value and the fix,
before any model or dataset loads, and nothing already written lost or replaced."""
import pytest

from illada_eval import adapter
from illada_eval.cli import main
from illada_eval.output import plan_output
from lm_eval_fixtures import checkpoint, one_torch_thread, read_results, tasks_dir  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def no_model_loads(monkeypatch):
    """Every error here must come before the weights load."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the error was found")

    monkeypatch.setattr(adapter, "load_model", refuse)


def exit_of(capsys, *argv):
    """(exit status, stderr) of the command; argparse's errors exit through SystemExit."""
    try:
        status = main([*map(str, argv)])
    except SystemExit as exit:
        status = exit.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--model-args", "treshold=0.9"], "--model-args: unknown key 'treshold' (did you mean 'threshold'?)"),
    (["--model-args", "threshold=high"], "--model-args: threshold must be a number >= 0, got 'high'"),
    (["--model-args", "kv_cache=full"], "kv_cache must be one of prefix, dual, got 'full'"),
    (["--dtype", "float13"], "--dtype: unknown dtype 'float13' (did you mean 'float32' or 'float16'?)"),
    (["--gen-kwargs", "max_gen_tokens=8"], "--gen-kwargs: unknown key 'max_gen_tokens' (did you mean 'max_gen_toks'?)"),
    (["--gen-kwargs", "block_length=0"], "--gen-kwargs: block_length must be at least 1, got 0"),
    (["--scoring", "mc_nm=8"], "--scoring: unknown key 'mc_nm' (did you mean 'mc_num'?)"),
    (["--limit", "-1"], "--limit must be a whole number of documents >= 1 or a fraction in (0, 1), got -1"),
    (["--limit", "0"], "--limit must be a whole number"),
    (["--limit", "2.5"], "got 2.5"),
    (["--num-fewshot", "-1"], "--num-fewshot must be at least 0, got -1"),
    (["--processes", "0"], "--processes must be at least 1, got 0"),
    (["--batch-size", "0"], "expected a positive integer or 'auto', got '0'"),
    (["--include-path", "no/such/folder"], "--include-path no/such/folder: no such folder of task YAMLs"),
    (["--verbosity", "loud"], "invalid choice: 'LOUD'"),
])
def test_bad_flag_values_exit_2_naming_the_value(flags, message, capsys, tmp_path):
    status, err = exit_of(capsys, "--model", "demo", "--tasks", "illada_sanity_mc", "-o", tmp_path / "out", *flags)
    assert status == 2 and message in err, err
    assert not (tmp_path / "out").exists()


def test_lm_eval_spellings_are_accepted(capsys, tmp_path):
    """lm-eval's flag names reach the same settings (checked here through an error they lead to)."""
    status, err = exit_of(capsys, "--model", "demo", "--tasks", "illada_sanity_mc", "--output_path", tmp_path,
                          "--model_args", "mc_num=x", "--batch_size", "auto", "--num_fewshot", "0", "--log_samples",
                          "--gen_kwargs", "max_gen_toks=4", "--apply_chat_template", "--fewshot_as_multiturn",
                          "--system_instruction", "Be brief.", "--use_cache", tmp_path / "c", "-x", "-w")
    assert status == 2 and "mc_num must be an integer >= 1, got 'x'" in err


def test_scoring_settings_that_do_not_fit_together_fail_before_the_model_loads(capsys, tmp_path):
    status, err = exit_of(capsys, "--model", "demo", "--tasks", "illada_sanity_mc_elbo", "-o", tmp_path / "out",
                          "--scoring", "mc_num=10,mc_batch_size=4")
    assert status == 1 and "mc_num (10) must be a multiple of mc_batch_size (4): use mc_num=8 or 12" in err
    assert not (tmp_path / "out").exists(), "a failed run leaves no folders"


def test_an_output_directory_named_like_a_json_file_is_refused(capsys, tmp_path):
    folder = tmp_path / "results.json"
    folder.mkdir()
    status, err = exit_of(capsys, "--model", "demo", "--tasks", "illada_sanity_mc", "-o", folder)
    assert status == 1 and f"--output-path {folder} is a directory" in err
    assert list(folder.iterdir()) == []


def test_unknown_task_fails_before_the_model_loads(capsys, tmp_path):
    status, err = exit_of(capsys, "--model", "demo", "--tasks", "illada_sanity_mcq", "-o", tmp_path / "out")
    assert status == 1 and "Unknown task 'illada_sanity_mcq'" in err and "illada_sanity_mc" in err
    assert not (tmp_path / "out").exists()


def test_output_files_never_replace_earlier_ones(tmp_path):
    existing = tmp_path / "run.json"
    existing.write_text("earlier results")
    plans = [plan_output(str(existing), "demo"), plan_output(str(existing), "demo")]
    assert all(plan.results.parent == tmp_path and plan.results.name.startswith("run_") for plan in plans)
    assert plans[0].results != plans[1].results, "two runs in the same second get distinct files"
    folder = [plan_output(str(tmp_path / "out"), "GSAI-ML/LLaDA-8B-Base") for _ in range(2)]
    assert folder[0].results.parent == tmp_path / "out" / "GSAI-ML__LLaDA-8B-Base"  # lm-eval's layout
    assert folder[0].results != folder[1].results
    assert existing.read_text() == "earlier results"


def test_every_task_without_data_is_named_at_once_before_the_model_loads(capsys, tmp_path):
    empty_mirror = tmp_path / "mirror"
    empty_mirror.mkdir()
    status, err = exit_of(capsys, "--model", "demo", "--tasks", "arc,gsm8k,illada_sanity_mc", "-o", tmp_path / "out",
                          "--data-dir", empty_mirror)
    assert status == 1 and "2 of 3 tasks cannot get their data" in err, err
    for task, benchmark in (("illada_arc_challenge", "arc_challenge"), ("illada_gsm8k", "gsm8k")):
        assert f"{task}: " in err and f"--only {benchmark}" in err
    assert not (tmp_path / "out").exists()
