"""Where a run's results go and how they are written: lm-eval's ``--output_path`` layout.

``--output-path DIR`` (default ``results``, as in lm-eval's documentation) writes
``DIR/<model_name_sanitized>/results_<time>.json`` and, with ``--log-samples``,
``samples_<task>_<time>.jsonl`` beside it; ``--output-path NAME.json`` writes
``NAME_<time>.json`` (and the samples in its folder). ``<time>`` is lm-eval's date id, to the
microsecond, so no run replaces another's file. The results hold the keys lm-eval's
``EvaluationTracker`` writes.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_OUTPUT = "results"
HF_PREFIX = "hf:"


@dataclass(frozen=True)
class OutputPlan:
    """The files of one run, decided (and checked writable) before any work is done."""

    results: Path
    samples_dir: Path
    date_id: str

    def samples(self, task: str) -> Path:
        return self.samples_dir / f"samples_{task}_{self.date_id}.jsonl"


def model_name(model: str) -> str:
    """The model's name as lm-eval records it: what ``pretrained`` says (``hf:`` dropped)."""
    return model[len(HF_PREFIX):] if model.startswith(HF_PREFIX) else model


def plan_output(output: str, model: str) -> OutputPlan:
    """The files this run will write; a ValueError naming ``output`` and the fix when they
    cannot be written. Nothing is created yet: a run that fails leaves no empty folders."""
    from lm_eval.utils import sanitize_model_name

    target = Path(output).expanduser()
    date_id = datetime.now().isoformat().replace(":", "-")  # lm-eval's date id
    if target.suffix == ".json":
        if target.is_dir():
            raise ValueError(f"--output-path {output} is a directory, not a .json file: name a new "
                             f"file, or the directory without .json (results go to DIR/<model>/)")
        results, samples_dir = target.with_name(f"{target.stem}_{date_id}.json"), target.parent
    else:
        if target.exists() and not target.is_dir():
            raise ValueError(f"--output-path {output} is a file; name a directory or a .json file")
        samples_dir = target / sanitize_model_name(model_name(model))
        results = samples_dir / f"results_{date_id}.json"
    _check_writable(samples_dir, output)
    return OutputPlan(results, samples_dir, date_id)


def _check_writable(folder: Path, output: str) -> None:
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--output-path {output}: {existing} is a file, so {folder} cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--output-path {output}: cannot write to {existing} (permission denied); "
                         "choose another --output-path")


def lm_eval_keys(model: str, start: float, end: float, chat_template: str | None,
                 system_instruction: str | None, fewshot_as_multiturn: bool,
                 samples: dict[str, list] | None) -> dict[str, Any]:
    """The keys lm-eval's ``EvaluationTracker`` adds to a results file."""
    from lm_eval.utils import hash_string, sanitize_model_name

    name = model_name(model)
    return {
        # one hash per task over its documents, prompts and targets (only with logged samples)
        "task_hashes": {
            task: hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in rows))
            for task, rows in (samples or {}).items()
        },
        "model_source": "hf" if model.startswith(HF_PREFIX) else "illada",
        "model_name": name,
        "model_name_sanitized": sanitize_model_name(name),
        "system_instruction": system_instruction,
        "system_instruction_sha": hash_string(system_instruction) if system_instruction else None,
        "fewshot_as_multiturn": fewshot_as_multiturn,
        "chat_template": chat_template,
        "chat_template_sha": hash_string(chat_template) if chat_template else None,
        "start_time": start,
        "end_time": end,
        "total_evaluation_time_seconds": str(end - start),
    }


def write_results(plan: OutputPlan, results: dict[str, Any], samples: dict[str, list] | None) -> Path:
    """Write the per-task sample files and the results JSON atomically; a file that cannot be
    written goes to a new private folder under the temp directory rather than lose the run."""
    from lm_eval.utils import handle_non_serializable

    from illada_eval.results import write_atomic

    fallback_dir: list[Path] = []

    def dump(path: Path, text: str) -> Path:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text.encode("utf-8"))
            return path
        except OSError as error:
            if not fallback_dir:
                fallback_dir.append(Path(tempfile.mkdtemp(prefix="illada-eval-")))
            fallback = fallback_dir[0] / path.name
            write_atomic(fallback, text.encode("utf-8"))
            log.error("could not write %s (%s); saved to %s instead", path, error, fallback)
            return fallback

    for task, rows in (samples or {}).items():
        lines = "".join(json.dumps(row, default=handle_non_serializable, ensure_ascii=False) + "\n" for row in rows)
        dump(plan.samples(task), lines)
    return dump(plan.results, json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False))


def short_table(results: dict[str, Any], names: list[str]) -> str:
    """lm-eval's table with one row per requested task or group (subtasks stay in the JSON)."""
    from lm_eval.utils import make_table

    shown = [name for name in names if name in results["results"]]
    if not shown:  # a tag expands to tasks that are not named themselves: show all
        shown = list(results["results"])
    keep = {"results": {name: results["results"][name] for name in shown}}
    for key in ("versions", "n-shot", "higher_is_better"):
        keep[key] = results.get(key, {})
    return make_table(keep)


def speed_line(speed: dict[str, Any]) -> str:
    parts = [f"wall {speed['wall_s']:.1f} s", f"{speed['processes']} process(es)"]
    if speed.get("cached_requests"):
        parts.append(f"{speed['cached_requests']} of {speed['requests']} requests answered by --use-cache")
    if speed.get("model_calls"):
        parts.append(f"{speed['model_calls']} model calls (NFE)")
    if speed.get("generated_tokens"):
        rate = speed.get("tokens_per_s")
        parts.append(f"{speed['generated_tokens']} generated tokens" + (f", {rate:.1f} tokens/s" if rate else ""))
    return "speed: " + ", ".join(parts)
