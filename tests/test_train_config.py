"""Training configuration: recipes, overrides, validation, the learning-rate schedule."""
from __future__ import annotations

from pathlib import Path

import pytest

from illada_eval.train.checkpoint import export_model
from illada_eval.train.cli import main
from illada_eval.train.config import RECIPES_DIR, check_output_paths, load_config, parse_overrides
from illada_eval.train.data import _read_local
from illada_eval.train.schedule import lr_at


def test_every_bundled_recipe_loads():
    names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
    assert names == ["demo", "pretrain", "sft-illada", "sft-llada"]
    objectives = {name: load_config(name).objective for name in names}
    assert objectives == {"demo": "sft-llada", "pretrain": "pretrain", "sft-illada": "sft-illada",
                          "sft-llada": "sft-llada"}


def test_overrides_are_typed_and_merge_into_model():
    config = load_config("demo", ["--lr", "3e-4", "--max_steps=7", "--model.hidden_size", "32",
                                  "--resume", "--data_files", "a.jsonl"])
    assert config.lr == 3e-4 and isinstance(config.lr, float)
    assert config.max_steps == 7 and config.resume is True
    assert config.data_files == ["a.jsonl"]
    # one model key changed, the recipe's others kept
    assert config.model["hidden_size"] == 32 and config.model["num_hidden_layers"] == 3


def test_bare_flag_followed_by_another_key():
    assert parse_overrides(["--resume", "--seed", "3"]) == {"resume": True, "seed": 3}


def test_unknown_recipe_key_names_the_key_and_a_suggestion(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("objective: pretrain\nlearning_rate: 0.1\nmax_steps: 1\ntokenizer: char\n")
    with pytest.raises(ValueError, match=r"unknown key 'learning_rate' in recipe .*r\.yaml"):
        load_config(recipe)
    with pytest.raises(ValueError, match="unknown key 'mx_steps'.*Did you mean max_steps"):
        load_config("demo", ["--mx_steps", "3"])
    with pytest.raises(ValueError, match="unknown key 'hidden' in `model`.*hidden_size"):
        load_config("demo", ["--model.hidden", "3"])


def test_wrong_types_and_values_are_refused():
    with pytest.raises(ValueError, match="max_steps: expected"):
        load_config("demo", ["--max_steps", "many"])
    with pytest.raises(ValueError, match="objective must be one of"):
        load_config("demo", ["--objective", "finetune"])
    with pytest.raises(ValueError, match="multiple of micro_batch_size"):
        load_config("demo", ["--batch_size", "10", "--micro_batch_size", "4"])
    with pytest.raises(ValueError, match="sft-llada keeps every example whole"):
        load_config("sft-llada", ["--two_segment_prob", "0.3"])
    with pytest.raises(ValueError, match="random_pad_prob varies sft-llada's EOS padding"):
        load_config("pretrain", ["--random_pad_prob", "0.5"])
    with pytest.raises(ValueError, match="probabilities in"):
        load_config("demo", ["--random_pad_prob", "1.5"])


def test_cli_reports_user_errors_in_one_line(capsys):
    assert main(["demo", "--no_such_key", "1"]) == 2
    assert "illada-train: error: unknown key 'no_such_key'" in capsys.readouterr().err
    assert main(["no-such-recipe"]) == 2
    assert "no recipe file 'no-such-recipe'" in capsys.readouterr().err
    assert main(["--help"]) == 0 and "--micro_batch_size" in capsys.readouterr().out


def test_schedule_warmup_constant_then_decay():
    settings = dict(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=100, decay_fraction=0.2)
    cosine = [lr_at(s, decay="cosine", **settings) for s in range(100)]
    linear = [lr_at(s, decay="linear", **settings) for s in range(100)]
    assert cosine[0] == pytest.approx(0.1) and cosine[9] == pytest.approx(1.0)  # linear warmup
    assert all(c == 1.0 for c in cosine[10:80])  # constant until the last 20%
    assert cosine[-1] == pytest.approx(0.1) and linear[-1] == pytest.approx(0.1)  # ends at min_lr
    assert all(a >= b for a, b in zip(cosine[80:], cosine[81:]))  # decays monotonically
    assert linear[89] == pytest.approx(0.1 + 0.9 * (1 - 10 / 20))  # half-way down the line
    assert cosine[84] > linear[84]  # a cosine starts slower than a line


def test_the_export_never_replaces_the_installed_package_or_an_earlier_export(tmp_path, monkeypatch, capsys):
    """``illada-train demo`` run from the repository root once overwrote the bundled demo model."""
    import illada_eval

    demo = Path(illada_eval.__file__).resolve().parent / "demo"
    before = {p.name: p.stat().st_mtime_ns for p in demo.iterdir()}
    monkeypatch.chdir(demo.parent.parent)  # where the demo recipe's relative export_dir is the package's
    assert main(["demo", "--max_steps", "3", "--output_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "export_dir illada_eval/demo is inside the installed illada-eval package" in err and "--overwrite" in err
    assert {p.name: p.stat().st_mtime_ns for p in demo.iterdir()} == before
    assert not (tmp_path / "run").exists(), "refused before any work"

    earlier = tmp_path / "export"
    earlier.mkdir()
    (earlier / "model.safetensors").write_text("an earlier model")
    with pytest.raises(ValueError, match=f"export_dir {earlier} already holds files.*--overwrite"):
        check_output_paths(load_config("demo", ["--export_dir", str(earlier)]))
    check_output_paths(load_config("demo", ["--export_dir", str(earlier), "--overwrite"]))


def test_an_output_dir_that_is_a_file_is_named(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["demo", "--output_dir", str(blocker), "--export_dir", str(tmp_path / "e")]) == 2
    assert f"output_dir {blocker} is a file, not a folder" in capsys.readouterr().err


def test_text_that_is_not_utf8_names_its_file(tmp_path, capsys):
    recipe = tmp_path / "latin1.yaml"
    recipe.write_bytes("objective: pretrain  # caf\xe9\n".encode("latin-1"))
    assert main([str(recipe)]) == 2
    assert f"recipe {recipe} is not UTF-8 text" in capsys.readouterr().err
    data = tmp_path / "latin1.jsonl"
    data.write_bytes('{"text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(ValueError, match=f"data file {data} is not UTF-8 text .* at byte 13"):
        list(_read_local(data, "text"))


def test_exported_files_get_the_permissions_of_a_new_file(tmp_path):
    import os
    import tempfile

    def write_private(folder):  # a writer that goes through mkstemp leaves mode 0600
        handle, name = tempfile.mkstemp(dir=folder)
        os.close(handle)
        os.rename(name, folder / "model.safetensors")

    export_model(tmp_path / "export", write_private)
    mask = os.umask(0)
    os.umask(mask)
    mode = (tmp_path / "export" / "model.safetensors").stat().st_mode & 0o777
    assert mode == 0o666 & ~mask, f"mode {mode:o}, expected {0o666 & ~mask:o}"
