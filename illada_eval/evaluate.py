"""``illada-eval run``: run the paper's benchmarks on a diffusion checkpoint, or on an ``hf:`` baseline.

    illada-eval --model GSAI-ML/LLaDA-8B-Base --tasks arc,bbh --preset base --limit 50
    illada-eval --model hf:Qwen/Qwen2.5-7B --tasks arc,bbh
    accelerate launch -m illada_eval --model PATH --tasks mmlu      # data parallel

Tasks are lm-eval tasks: ours under tasks/ or any of lm-eval's own. The run writes one
lm-eval-format results JSON (:mod:`illada_eval.output`) with an ``illada_eval`` block holding
the full settings and the speed figures, and prints a short table. This module orchestrates;
the flags are :mod:`illada_eval.eval_args`, the tasks :mod:`illada_eval.task_setup`.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from illada_eval import eval_args, output, task_setup
from illada_eval.data import DATA_DIR_ENV, DataUnavailableError, configured_mirror
from illada_eval.launch import is_launched, launch_processes
from illada_eval.registry import protocol_for_backend
from illada_eval.settings import SCORING_KEYS, parse_settings

SPEED_SUMS = ("requests", "model_calls", "generated_tokens", "truncated_contexts")
# errors that are the user's to fix: printed as one line, no traceback
USER_ERRORS = (ValueError, FileNotFoundError, PermissionError, FloatingPointError, DataUnavailableError)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = eval_args.parse(argv)
    if args.processes > 1 and not is_launched():
        return launch_processes(args.processes, argv)
    from illada_eval.checkers.code import SandboxError

    try:
        return run(args, argv=argv)
    except (*USER_ERRORS, SandboxError) as error:
        print(f"illada-eval: error: {error}", file=sys.stderr)
        return 1


def run(args: Any, argv: list[str]) -> int:
    start = time.time()
    from lm_eval.utils import setup_logging

    setup_logging(args.verbosity)
    if args.data_dir:
        os.environ[DATA_DIR_ENV] = str(Path(args.data_dir).expanduser())
    # what a user can get wrong is checked before anything long: output, tasks (before torch
    # loads: an unknown name is reported in seconds), device, model, then the tasks' data
    plan = output.plan_output(args.output_path, args.model)
    names, manager = task_setup.resolve(args.tasks, args.preset, args.include_path)
    mirror = configured_mirror()
    source = f"; benchmark data from the offline mirror {mirror} where it holds them, else the Hub" if mirror else ""
    print(f"illada-eval: {len(names)} task(s) ({', '.join(names)}){source}", file=sys.stderr, flush=True)
    from illada_eval.adapter import named_checkpoint, pick_device

    device = str(pick_device(args.device))
    backend, model_args = backend_arguments(args, device)
    recorded_args = dict(model_args)
    if backend == "illada":  # a missing path or an unreachable hub id fails here, naming it
        from illada_eval.model import resolve_checkpoint

        model_args["pretrained"] = str(resolve_checkpoint(named_checkpoint(model_args["pretrained"]), args.revision))

    built = task_setup.build(manager, names)
    leaves = {task.task_name: task for obj in built for task in task_setup.leaf_tasks(obj)}
    scoring_overrides = parse_settings(eval_args.parse_pairs(args.scoring), SCORING_KEYS, "--scoring")
    task_settings = {name: task_setup.scoring_settings(task) | scoring_overrides for name, task in leaves.items()}
    if backend == "hf":
        for task in leaves.values():
            task_setup.strip_diffusion_generation_keys(task)
    else:
        check_task_settings(model_args, task_settings)
        model_args["task_settings"] = task_settings
    from lm_eval.api.registry import get_model

    lm = get_model(backend).create_from_arg_obj(model_args, {})
    gen_overrides = eval_args.parse_pairs(args.gen_kwargs) or None
    if hasattr(lm, "check_generation"):
        task_setup.check_generation_budgets(lm, leaves, gen_overrides)
    chat = {name: task_setup.wants_chat_template(task, args.chat_template) for name, task in leaves.items()}

    def multiturn(chat_on: bool) -> bool:  # few-shot examples as chat turns: with the chat template
        return chat_on if args.fewshot_as_multiturn is None else args.fewshot_as_multiturn and chat_on

    import lm_eval

    results = None
    # lm-eval applies a chat template to all tasks of a call or to none: one call per choice
    for flag in (False, True):
        objects = [obj for obj in built if task_setup.chat_flag(obj, chat) == flag]
        if objects:
            part = lm_eval.simple_evaluate(
                model=lm,
                tasks=objects,
                task_manager=manager,
                num_fewshot=args.num_fewshot,
                limit=int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit,
                use_cache=cache_prefix(args.use_cache, recorded_args, task_settings, gen_overrides, chat),
                log_samples=args.log_samples or args.predict_only,
                predict_only=args.predict_only,
                write_out=args.write_out,
                system_instruction=args.system_instruction,
                apply_chat_template=flag,
                fewshot_as_multiturn=multiturn(flag),
                gen_kwargs=gen_overrides,
                bootstrap_iters=args.bootstrap_iters,
                random_seed=args.seed,
                numpy_random_seed=args.seed,
                torch_random_seed=args.seed,
                fewshot_random_seed=args.seed,
                confirm_run_unsafe_code=args.confirm_run_unsafe_code,
            )
            results = merge_results(results, part)
    requests = sum(len(getattr(task, "instances", None) or []) for task in leaves.values())
    speed = gather_speed(lm, time.time() - start, requests)
    if lm.rank != 0 or results is None:  # the main process writes and prints
        return 0

    # the task settings are recorded with the adapter's own settings (config.illada_adapter)
    results["config"].update(model=backend, model_args=recorded_args, batch_size=args.batch_size, device=device)
    samples = results.pop("samples", None)  # None without --log-samples
    chat_template = lm.chat_template(True) if any(chat.values()) and hasattr(lm, "chat_template") else None
    results.update(output.lm_eval_keys(args.model, start, time.time(), chat_template, args.system_instruction,
                                       multiturn(any(chat.values())), samples))
    results["illada_eval"] = {
        "version": version("illada-eval"),
        "lm_eval_version": version("lm_eval"),
        "torch_version": version("torch"),
        "python": platform.python_version(),
        "command": ["illada-eval", *argv],
        "settings": vars(args),
        "preset": args.preset,
        "protocol": protocol_for_backend(args.preset, backend).name,
        "model": args.model,
        "backend": backend,
        "tasks": names,
        "chat_template": chat,
        "speed": speed,
    }
    written = output.write_results(plan, results, samples)
    print(output.short_table(results, names))
    print(output.speed_line(speed))
    print(f"results: {written}")
    return 0


# ---------------------------------------------------------------------------- model


def backend_arguments(args: Any, device: str) -> tuple[str, dict[str, Any]]:
    """The lm-eval backend name and its arguments for ``--model``."""
    extra = eval_args.parse_pairs(args.model_args)
    batch = {"batch_size": args.batch_size}
    if args.max_batch_size:
        batch["max_batch_size"] = args.max_batch_size
    if args.model.startswith(output.HF_PREFIX):
        hf_args = {"pretrained": output.model_name(args.model), "device": device, "dtype": args.dtype or "auto"}
        if args.revision:
            hf_args["revision"] = args.revision
        return "hf", hf_args | batch | extra
    illada_args = {"pretrained": args.model, "device": device, "dtype": args.dtype,
                   "revision": args.revision, "seed": args.seed}
    checked = eval_args.check_model_args(extra, "--model-args")
    protocol = protocol_for_backend(args.preset, "illada").model_args  # e.g. Dream's BOS
    return "illada", {key: value for key, value in illada_args.items() if value is not None} | protocol | batch | checked


def check_task_settings(model_args: dict[str, Any], task_settings: dict[str, dict[str, Any]]) -> None:
    """Every task's likelihood settings (model_args, then its metadata, then --scoring) are valid,
    checked before the model loads: a bad combination would otherwise stop the run mid-way."""
    from illada_eval.settings import ScoringSettings, updated

    defaults = updated(ScoringSettings(), model_args, "--model-args")
    for name, settings in task_settings.items():
        updated(defaults, settings, f"task {name}")


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
    relevant = {k: v for k, v in model_args.items() if k not in ("batch_size", "max_batch_size", "device")}
    payload = json.dumps([relevant, task_settings, gen_overrides, chat], sort_keys=True, default=str)
    return f"{use_cache}_{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


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


def gather_speed(lm: Any, wall_s: float, requests: int) -> dict[str, Any]:
    """Speed figures of all processes: sums of counts, the slowest process's times. ``requests``
    is this process's share of the run's requests; those the backend never saw came from
    lm-eval's request cache (``--use-cache``)."""
    local = lm.speed_stats() if hasattr(lm, "speed_stats") else {}
    per_process = lm.gather_object((local, requests)) if lm.world_size > 1 else [(local, requests)]
    if per_process is None:  # not the main process
        return {}
    per_type: dict[str, dict[str, Any]] = {}
    for stats, _ in per_process:
        for request_type, figures in stats.items():
            total = per_type.setdefault(request_type, {key: 0 for key in SPEED_SUMS} | {"wall_s": 0.0})
            for key in SPEED_SUMS:
                total[key] += figures.get(key, 0)
            total["wall_s"] = max(total["wall_s"], figures.get("wall_s", 0.0))
    for figures in per_type.values():
        if figures["generated_tokens"]:
            figures["tokens_per_s"] = figures["generated_tokens"] / figures["wall_s"] if figures["wall_s"] else None
    generated = sum(f["generated_tokens"] for f in per_type.values())
    all_requests = sum(count for _, count in per_process)
    computed = sum(f["requests"] for f in per_type.values())
    return {
        "wall_s": wall_s,
        "processes": lm.world_size,
        "requests": all_requests,
        "cached_requests": max(0, all_requests - computed),
        "model_calls": sum(f["model_calls"] for f in per_type.values()),
        "generated_tokens": generated,
        "tokens_per_s": per_type.get("generate_until", {}).get("tokens_per_s"),
        "per_request_type": per_type,
    }
