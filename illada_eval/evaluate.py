"""``illada-eval``: run the paper's benchmarks on a diffusion checkpoint, or on an ``hf:`` baseline.

    illada-eval --model GSAI-ML/LLaDA-8B-Base --tasks arc,bbh --preset base --limit 50
    illada-eval --model hf:Qwen/Qwen2.5-7B --tasks arc,bbh
    accelerate launch -m illada_eval --model PATH --tasks mmlu      # data parallel
    illada-eval ls                                                  # presets, tasks, aliases

Tasks are lm-eval tasks: ours under tasks/ (their YAMLs hold each task's protocol: the scoring
method in ``metadata.illada``, the generation length and block in ``generation_kwargs``), or any
of lm-eval's own. The run writes one lm-eval-format results JSON with an ``illada_eval`` block
holding the full settings and the speed figures, and prints a short table.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import lm_eval
from lm_eval.api.registry import get_model
from lm_eval.tasks import TaskManager
from lm_eval.utils import handle_non_serializable, make_table, setup_logging, simple_parse_args_string

from illada_eval import presets
from illada_eval.adapter import pick_device
from illada_eval.checkers.code import SandboxError
from illada_eval.data import DATA_DIR_ENV, DataUnavailableError
from illada_eval.model import resolve_checkpoint
from illada_eval.results import write_atomic
from illada_eval.tasks import TASKS_DIR

DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo"
HF_PREFIX = "hf:"
SPEED_SUMS = ("requests", "model_calls", "generated_tokens", "truncated_contexts")
# metadata.illada keys that tell the adapter how to score likelihood requests
SCORING_KEYS = ("scoring", "mc_num", "mc_batch_size", "cfg_scale")


@dataclass
class EvalConfig:
    """Every flag of the command (recorded whole in each result file)."""

    model: str
    tasks: str | None = None
    preset: str = presets.DEFAULT_PRESET
    limit: float | None = None
    num_fewshot: int | None = None
    batch_size: int = 1
    device: str | None = None
    dtype: str | None = None
    revision: str | None = None
    output: str = "results/runs"
    log_samples: bool = False
    seed: int = 1234
    data_dir: str | None = None
    confirm_run_unsafe_code: bool = False
    use_cache: str | None = None
    model_args: str | None = None
    gen_kwargs: str | None = None
    scoring: str | None = None
    chat_template: str = "auto"
    include_path: list[str] = field(default_factory=list)
    bootstrap_iters: int = 100000
    verbosity: str = "WARNING"
    processes: int = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="illada-eval",
        description="Evaluate a masked diffusion LM (iLLaDA, LLaDA) or an hf: baseline on lm-eval tasks. "
        "Subcommands: ls, data, report, plot.",
    )
    parser.add_argument("--model", required=True,
                        help="checkpoint directory, Hugging Face Hub id, 'demo' (the bundled tiny model), "
                        "or hf:<id or path> for an autoregressive baseline through lm-eval's hf backend")
    parser.add_argument("--tasks", help="comma-separated benchmarks or task names (aliases: arc, bbh, math, ...; "
                        "'offline' = the preset's tasks the offline data holds); default: the whole preset")
    parser.add_argument("--preset", default=presets.DEFAULT_PRESET, choices=presets.PRESETS,
                        help="the paper's protocol: base or instruct (default: %(default)s)")
    parser.add_argument("--limit", type=float, help="documents per task (below 1: a fraction)")
    parser.add_argument("--num-fewshot", type=int, help="override the tasks' shot counts")
    parser.add_argument("--batch-size", type=int, default=1, help="sequences per model call (default: 1)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: CUDA when present)")
    parser.add_argument("--dtype", help="float32, bfloat16, ... (default: as stored)")
    parser.add_argument("--revision", help="Hub revision of the model")
    parser.add_argument("--output", default="results/runs",
                        help="a directory (results go to DIR/<model>/results_<time>.json) or a .json file "
                        "(default: %(default)s)")
    parser.add_argument("--log-samples", action="store_true", help="also write every request and response")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the run: few-shot sampling and "
                        "every request's own diffusion seed (default: %(default)s)")
    parser.add_argument("--data-dir", help="offline data mirror (`illada-eval data pull`); "
                        "default: $ILLADA_EVAL_DATA_DIR when set, else the Hub")
    parser.add_argument("--confirm-run-unsafe-code", action="store_true",
                        help="allow tasks that run model-written code (HumanEval, MBPP) in the sandbox")
    parser.add_argument("--use-cache", help="path prefix of lm-eval's request cache (one file per setting "
                        "and process): a rerun of the same command skips every request that finished, "
                        "so an interrupted run resumes")
    parser.add_argument("--model-args", help="more backend arguments and defaults for tasks that set "
                        "nothing, key=value,... (e.g. threshold=0.9 for parallel decoding)")
    parser.add_argument("--gen-kwargs", help="override the tasks' generation_kwargs, key=value,... "
                        "(e.g. max_gen_toks=256,block_length=32)")
    parser.add_argument("--scoring", help="override the tasks' likelihood settings, key=value,... with keys "
                        f"{', '.join(SCORING_KEYS)} (e.g. scoring=elbo,mc_num=128 for the scoring ablation)")
    parser.add_argument("--chat-template", default="auto", choices=("auto", "on", "off"),
                        help="apply the tokenizer's chat template: auto = as each task's metadata says "
                        "(the instruct preset does)")
    parser.add_argument("--include-path", action="append", default=[], help="another folder of task YAMLs")
    parser.add_argument("--bootstrap-iters", type=int, default=100000,
                        help="bootstrap iterations for stderrs (0: none; default: %(default)s)")
    parser.add_argument("--verbosity", default="WARNING", help="log level (default: %(default)s)")
    parser.add_argument("--processes", type=int, default=1,
                        help="data-parallel processes on this machine (one per GPU, or CPU processes "
                        "over gloo), started with torchrun; same as `accelerate launch -m illada_eval`")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    config = EvalConfig(**vars(build_parser().parse_args(argv)))
    if config.processes > 1 and "WORLD_SIZE" not in os.environ:
        return launch_processes(config.processes, argv)
    try:
        return run(config, argv=argv)
    except (ValueError, FileNotFoundError, PermissionError, FloatingPointError, DataUnavailableError,
            SandboxError) as error:
        print(f"illada-eval: error: {error}", file=sys.stderr)
        return 1


def launch_processes(count: int, argv: list[str]) -> int:
    """Run this same command in ``count`` processes under torchrun (they see WORLD_SIZE and split
    the requests instead of launching again)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={count}",
               "-m", "illada_eval", *argv]
    return subprocess.call(command)


def run(config: EvalConfig, argv: list[str]) -> int:
    start = time.perf_counter()
    setup_logging(config.verbosity)
    if config.data_dir:
        os.environ[DATA_DIR_ENV] = str(Path(config.data_dir).expanduser())
    # what a user can get wrong is checked before anything long: device, output, model, tasks
    device = str(pick_device(config.device))
    scoring_overrides = parse_scoring(config.scoring)
    output = prepare_output(config.output, config.model)
    backend, model_args = backend_arguments(config, device)
    recorded_args = dict(model_args)
    if backend == "illada":  # a missing path or an unreachable hub id fails here, naming it
        model_args["pretrained"] = str(resolve_checkpoint(model_args["pretrained"], config.revision))

    task_manager = cached_task_manager((str(TASKS_DIR), *config.include_path))
    try:
        names = presets.resolve_tasks(config.tasks, config.preset, known_tasks=task_manager.all_tasks)
    except ValueError as error:
        raise ValueError(f"{error}{unreadable_task_files(config.include_path)}") from None
    built = [obj for name in names for obj in load_task(task_manager, name)]
    leaves = {task.task_name: task for obj in built for task in leaf_tasks(obj)}
    task_settings = {name: scoring_settings(task) | scoring_overrides for name, task in leaves.items()}
    if backend == "hf":
        for task in leaves.values():
            strip_diffusion_generation_keys(task)
    else:
        model_args["task_settings"] = task_settings
    lm = get_model(backend).create_from_arg_obj(model_args, {})
    gen_overrides = simple_parse_args_string(config.gen_kwargs) if config.gen_kwargs else None
    if hasattr(lm, "check_generation"):
        check_generation_budgets(lm, leaves, gen_overrides)
    chat = {name: wants_chat_template(task, config.chat_template) for name, task in leaves.items()}

    results = None
    # lm-eval applies a chat template to all tasks of a call or to none: one call per choice
    for flag in (False, True):
        objects = [obj for obj in built if chat_flag(obj, chat) == flag]
        if objects:
            part = lm_eval.simple_evaluate(
                model=lm,
                tasks=objects,
                task_manager=task_manager,
                num_fewshot=config.num_fewshot,
                limit=int(config.limit) if config.limit is not None and config.limit >= 1 else config.limit,
                use_cache=cache_prefix(config.use_cache, recorded_args, task_settings, gen_overrides, chat),
                log_samples=config.log_samples,
                apply_chat_template=flag,
                fewshot_as_multiturn=flag,
                gen_kwargs=gen_overrides,
                bootstrap_iters=config.bootstrap_iters,
                random_seed=config.seed,
                numpy_random_seed=config.seed,
                torch_random_seed=config.seed,
                fewshot_random_seed=config.seed,
                confirm_run_unsafe_code=config.confirm_run_unsafe_code,
            )
            results = merge_results(results, part)
    speed = gather_speed(lm, time.perf_counter() - start)
    if lm.rank != 0 or results is None:  # the main process writes and prints
        return 0

    # the task settings are recorded with the adapter's own settings (config.illada_adapter)
    results["config"].update(model=backend, model_args=recorded_args, batch_size=config.batch_size, device=device)
    results["illada_eval"] = {
        "version": version("illada-eval"),
        "lm_eval_version": version("lm_eval"),
        "torch_version": version("torch"),
        "python": platform.python_version(),
        "command": ["illada-eval", *argv],
        "settings": asdict(config),
        "preset": config.preset,
        "model": config.model,
        "backend": backend,
        "tasks": names,
        "chat_template": chat,
        "speed": speed,
    }
    samples = results.pop("samples", None)  # None without --log-samples
    written = write_results(output, results, samples)
    print(short_table(results, names))
    print(speed_line(speed))
    print(f"results: {written}")
    return 0


# ---------------------------------------------------------------------------- model


def backend_arguments(config: EvalConfig, device: str) -> tuple[str, dict[str, Any]]:
    """The lm-eval backend name and its arguments for ``--model``."""
    extra = simple_parse_args_string(config.model_args) if config.model_args else {}
    if config.model.startswith(HF_PREFIX):
        pretrained = config.model[len(HF_PREFIX):]
        if not pretrained:
            raise ValueError("--model hf: needs a model after the colon, e.g. hf:Qwen/Qwen2.5-7B")
        args = {"pretrained": pretrained, "device": device, "batch_size": config.batch_size,
                "dtype": config.dtype or "auto"}
        if config.revision:
            args["revision"] = config.revision
        return "hf", args | extra
    pretrained = str(DEMO_MODEL_DIR) if config.model == "demo" else config.model
    if config.model == "demo" and not DEMO_MODEL_DIR.is_dir():
        raise FileNotFoundError(f"the demo model is not in {DEMO_MODEL_DIR}; reinstall illada-eval")
    args = {"pretrained": pretrained, "device": device, "batch_size": config.batch_size,
            "dtype": config.dtype, "revision": config.revision, "seed": config.seed}
    return "illada", {key: value for key, value in args.items() if value is not None} | extra


# ---------------------------------------------------------------------------- tasks


@functools.lru_cache(maxsize=4)
def cached_task_manager(include_paths: tuple[str, ...]) -> Any:
    """lm-eval's task index over its own tasks and ours. Indexing its thousands of YAMLs takes
    many seconds, so runs in one process (the Python API, the tests) share it; every run still
    builds its own task objects from it."""
    return TaskManager(include_path=list(include_paths))


def cache_prefix(use_cache: str | None, model_args: dict[str, Any], task_settings: dict[str, Any],
                 gen_overrides: dict[str, Any] | None, chat: dict[str, bool]) -> str | None:
    """``--use-cache`` plus a fingerprint of everything that changes a response.

    lm-eval keys its cache by the request text alone; settings that change the scores (model,
    dtype, seed, scoring, generation overrides, chat template) select another cache file, so a
    changed run never reads stale responses while a rerun of the same command resumes. Batch
    size and device are left out: they do not change the responses.
    """
    if use_cache is None:
        return None
    relevant = {k: v for k, v in model_args.items() if k not in ("batch_size", "device")}
    payload = json.dumps([relevant, task_settings, gen_overrides, chat], sort_keys=True, default=str)
    return f"{use_cache}_{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def unreadable_task_files(folders: list[str]) -> str:
    """A note naming the task YAMLs under ``folders`` that do not parse (lm-eval's index skips
    them without a word, so their tasks look unknown)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    problems = []
    for folder in folders:
        for path in sorted(Path(folder).expanduser().rglob("*.yaml")):
            try:
                load_yaml(path, resolve_func=False)
            except Exception as error:  # YAML syntax, a bad include: each is worth naming
                problems.append(f"{path}: {str(error).splitlines()[0]}")
    return (" These task files could not be read: " + "; ".join(problems)) if problems else ""


def load_task(task_manager: Any, name: str) -> list[Any]:
    """The built task or group objects a name stands for (a tag gives several tasks)."""
    try:
        loaded = task_manager.load([name])
    except KeyError as error:
        raise ValueError(f"lm-eval could not load task {name!r}: {error}") from error
    if name in loaded["groups"]:
        return [loaded["groups"][name]]
    if name in loaded["tasks"]:
        return [loaded["tasks"][name]]
    return list(loaded["tasks"].values())


def leaf_tasks(obj: Any) -> list[Any]:
    return list(obj.get_all_tasks()) if hasattr(obj, "get_all_tasks") else [obj]


def illada_metadata(task: Any) -> dict[str, Any]:
    metadata = task.config.metadata if isinstance(task.config.metadata, dict) else {}
    return dict(metadata.get("illada") or {})


def scoring_settings(task: Any) -> dict[str, Any]:
    """The adapter's likelihood settings of a task: its ``metadata.illada`` scoring keys, and
    whether lm-eval's greedy flag is read (only ``loglikelihood`` tasks' acc reads it)."""
    illada = illada_metadata(task)
    settings = {key: illada[key] for key in SCORING_KEYS if illada.get(key) is not None}
    settings["greedy"] = task.get_config("output_type") == "loglikelihood"
    return settings


def parse_scoring(text: str | None) -> dict[str, Any]:
    overrides = simple_parse_args_string(text) if text else {}
    unknown = sorted(set(overrides) - set(SCORING_KEYS))
    if unknown:
        raise ValueError(f"--scoring: unknown keys {unknown}; the keys are {', '.join(SCORING_KEYS)}")
    return overrides


def wants_chat_template(task: Any, mode: str) -> bool:
    if mode != "auto":
        return mode == "on"
    return bool(illada_metadata(task).get("chat_template", False))


def chat_flag(obj: Any, chat: dict[str, bool]) -> bool:
    """A group runs with the chat template when its tasks ask for it."""
    return all(chat[task.task_name] for task in leaf_tasks(obj))


def check_generation_budgets(lm: Any, tasks: dict[str, Any], overrides: dict[str, Any] | None) -> None:
    """Every generation task's budget fits the model, checked before the first request runs."""
    for name, task in tasks.items():
        if task.get_config("output_type") != "generate_until":
            continue
        gen_kwargs = dict(task.get_config("generation_kwargs") or {}) | (overrides or {})
        try:
            lm.check_generation(gen_kwargs)
        except ValueError as error:
            raise ValueError(f"task {name}: {error}") from None


def strip_diffusion_generation_keys(task: Any) -> None:
    """Drop the sampler's keys from generation_kwargs: lm-eval's hf generate() rejects them."""
    kwargs = task.get_config("generation_kwargs")
    if isinstance(kwargs, dict):
        kept = {k: v for k, v in kwargs.items() if k not in presets.DIFFUSION_GENERATION_KEYS}
        task.set_config("generation_kwargs", kept)


# ---------------------------------------------------------------------------- results


def merge_results(into: dict[str, Any] | None, part: dict[str, Any] | None) -> dict[str, Any] | None:
    """One result dict from the runs of several task sets (with and without chat template)."""
    if into is None or part is None:
        return into or part
    for key, value in part.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict) and key != "config":
            into[key].update(value)
        else:
            into.setdefault(key, value)
    return into


def gather_speed(lm: Any, wall_s: float) -> dict[str, Any]:
    """Speed figures of all processes: sums of counts, the slowest process's times."""
    local = lm.speed_stats() if hasattr(lm, "speed_stats") else {}
    per_process = lm.gather_object(local) if lm.world_size > 1 else [local]
    if per_process is None:  # not the main process
        return {}
    per_type: dict[str, dict[str, Any]] = {}
    for stats in per_process:
        for request_type, figures in stats.items():
            total = per_type.setdefault(request_type, {key: 0 for key in SPEED_SUMS} | {"wall_s": 0.0})
            for key in SPEED_SUMS:
                total[key] += figures.get(key, 0)
            total["wall_s"] = max(total["wall_s"], figures.get("wall_s", 0.0))
    for figures in per_type.values():
        if figures["generated_tokens"]:
            figures["tokens_per_s"] = figures["generated_tokens"] / figures["wall_s"] if figures["wall_s"] else None
    generated = sum(f["generated_tokens"] for f in per_type.values())
    return {
        "wall_s": wall_s,
        "processes": lm.world_size,
        "model_calls": sum(f["model_calls"] for f in per_type.values()),
        "generated_tokens": generated,
        "tokens_per_s": per_type.get("generate_until", {}).get("tokens_per_s"),
        "per_request_type": per_type,
    }


def short_table(results: dict[str, Any], names: list[str]) -> str:
    """lm-eval's table with one row per requested task or group (subtasks stay in the JSON)."""
    shown = [name for name in names if name in results["results"]]
    if not shown:  # a tag expands to tasks that are not named themselves: show all
        shown = list(results["results"])
    keep = {"results": {name: results["results"][name] for name in shown}}
    for key in ("versions", "n-shot", "higher_is_better"):
        keep[key] = results.get(key, {})
    return make_table(keep)


def speed_line(speed: dict[str, Any]) -> str:
    parts = [f"wall {speed['wall_s']:.1f} s", f"{speed['processes']} process(es)"]
    if speed.get("model_calls"):
        parts.append(f"{speed['model_calls']} model calls (NFE)")
    if speed.get("generated_tokens"):
        rate = speed.get("tokens_per_s")
        parts.append(f"{speed['generated_tokens']} generated tokens" + (f", {rate:.1f} tokens/s" if rate else ""))
    return "speed: " + ", ".join(parts)


def model_slug(model: str) -> str:
    """A file-name-safe name of ``--model``: a local path's last part, a hub id with '__'."""
    name = model[len(HF_PREFIX):] if model.startswith(HF_PREFIX) else model
    path = Path(name).expanduser()
    if path.exists():
        name = path.resolve().name
    return ("hf__" if model.startswith(HF_PREFIX) else "") + name.strip("/").replace("/", "__")


def prepare_output(output: str, model: str) -> Path:
    """The results file this run will write, checked writable now, before any work is done."""
    target = Path(output).expanduser()
    stamp = datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    if target.suffix != ".json":
        target = target / model_slug(model) / f"results_{stamp}.json"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".write-check-"):
            pass
    except OSError as error:
        raise PermissionError(
            f"cannot write results to {target.parent} ({error.strerror or error}); "
            "choose another --output"
        ) from error
    return target


def write_results(target: Path, results: dict[str, Any], samples: dict[str, list] | None) -> Path:
    """Write the results JSON (and per-task sample files) atomically; if that fails, into the
    temp directory rather than lose the run."""
    def dump(path: Path, text: str) -> Path:
        try:
            write_atomic(path, text.encode("utf-8"))
            return path
        except OSError as error:
            fallback = Path(tempfile.gettempdir()) / path.name
            fallback.write_text(text, encoding="utf-8")
            logging.getLogger(__name__).error("could not write %s (%s); saved to %s instead", path, error, fallback)
            return fallback

    for task, rows in (samples or {}).items():
        lines = "".join(json.dumps(row, default=handle_non_serializable, ensure_ascii=False) + "\n" for row in rows)
        dump(target.with_name(f"{target.stem}_samples_{task}.jsonl"), lines)
    return dump(target, json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False))


# ---------------------------------------------------------------------------- ls


def list_main(argv: list[str] | None = None) -> int:
    """``illada-eval ls``: the presets with their tasks, the tasks outside them, the aliases."""
    argparse.ArgumentParser(prog="illada-eval ls", description=list_main.__doc__).parse_args(argv)
    for preset, tasks in presets.PRESET_TASKS.items():
        print(f"preset {preset}:")
        for benchmark, task in tasks.items():
            print(f"  {benchmark:14s} {task}")
    print("other tasks:")
    for benchmark, task in presets.EXTRA_TASKS.items():
        print(f"  {benchmark:14s} {task}")
    shown = {task for tasks in presets.PRESET_TASKS.values() for task in tasks.values()} | set(presets.EXTRA_TASKS.values())
    ours = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)  # our YAMLs only: fast
    for task in sorted(set(ours.all_groups + ours.all_subtasks) - shown):
        if task.startswith("illada_"):
            print(f"  {'':14s} {task}")
    by_target: dict[str, list[str]] = {}
    for alias, benchmark in presets.ALIASES.items():
        if alias != benchmark:
            by_target.setdefault(benchmark, []).append(alias)
    print("aliases:")
    for benchmark, aliases in sorted(by_target.items()):
        print(f"  {benchmark:14s} {', '.join(sorted(aliases))}")
    print(f"  {presets.OFFLINE_SELECTOR:14s} the preset's tasks whose data the offline mirror holds")
    print("Any task name of lm-eval (`lm-eval ls tasks`) works as well.")
    return 0
