"""The command line of ``illada-eval run``: its flags (with lm-eval's spellings as aliases) and the
checks of every value that need no model, so a mistake is reported in a second, before anything loads.

It imports nothing heavy: ``illada-eval run --help`` and a bad flag answer at once.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from illada_eval import presets
from illada_eval.registry import protocol_for_backend
from illada_eval.output import DEFAULT_OUTPUT, HF_PREFIX
from illada_eval.settings import (
    DEFAULT_BATCH_SIZE,
    DTYPES,
    GENERATION,
    LM_EVAL_GENERATION_KEYS,
    SCORING_KEYS,
    check_dtype,
    parse_settings,
    settings_help,
)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# generation_kwargs the diffusion backend reads (lm-eval's own and the sampler's)
DIFFUSION_GEN_KWARGS = tuple(dict.fromkeys(LM_EVAL_GENERATION_KEYS + tuple(s.name for s in GENERATION if s.name != "gen_length")))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="illada-eval run",
        description="Evaluate a masked diffusion LM (iLLaDA, LLaDA) or an hf: baseline on lm-eval tasks. "
        "`run` may be left out: `illada-eval --model ... --tasks ...`. lm-eval's flag spellings "
        "(--model_args, --batch_size, --output_path/-o, --log_samples/-s, ...) work as well.",
        epilog=settings_help() + "\n\nExamples:\n"
        "  illada-eval --model GSAI-ML/LLaDA-8B-Base --tasks arc,bbh --preset base --limit 50\n"
        "  illada-eval --model hf:Qwen/Qwen2.5-7B --tasks arc,bbh\n"
        "  illada-eval --model demo --tasks illada_sanity_mc --model-args scoring=confidence",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--model", required=True,
        help="checkpoint directory, Hugging Face Hub id, 'demo' (the bundled tiny model), or "
        "hf:<id or path> for an autoregressive baseline through lm-eval's hf backend")
    add("--tasks", "-t", help="comma-separated benchmarks or task names (aliases: arc, bbh, math, ...; "
        "'offline' = the preset's tasks the offline data holds); default: the whole preset")
    add("--preset", default=presets.DEFAULT_PRESET, choices=presets.PRESETS,
        help="the protocol of a published column (`illada-eval protocol` shows each; base and instruct are "
        "iLLaDA's; default: %(default)s)")
    add("--limit", "-L", type=float, help="documents per task (below 1: a fraction of them)")
    add("--num-fewshot", "--num_fewshot", "-f", type=int, help="override the tasks' shot counts")
    add("--batch-size", "--batch_size", "-b", type=_batch_size, default=DEFAULT_BATCH_SIZE,
        help="sequences per model call, or 'auto': the largest that fits, halving on out-of-memory "
        "(default: %(default)s)")
    add("--max-batch-size", "--max_batch_size", type=int, help="the largest batch 'auto' tries (default: 64)")
    add("--device", help="cpu, cuda, cuda:1, ... (default: CUDA when present)")
    add("--dtype", help=f"{', '.join(DTYPES)} (default: as the checkpoint stores the weights)")
    add("--revision", help="Hub revision of the model")
    add("--output-path", "--output_path", "--output", "-o", dest="output_path", default=DEFAULT_OUTPUT,
        help="a directory: results go to DIR/<model>/results_<time>.json as lm-eval writes them; or "
        "NAME.json: results go to NAME_<time>.json (default: %(default)s)")
    add("--log-samples", "--log_samples", "-s", action="store_true",
        help="also write every request and response (samples_<task>_<time>.jsonl)")
    add("--predict-only", "--predict_only", "-x", action="store_true",
        help="only generate and log the responses, compute no metrics (implies --log-samples)")
    add("--write-out", "--write_out", "-w", action="store_true", help="print the first prompts of each task")
    add("--seed", type=int, default=1234, help="seed of the run: few-shot sampling and every request's "
        "own diffusion seed (default: %(default)s)")
    add("--data-dir", help="offline data mirror (`illada-eval data pull`); default: $ILLADA_EVAL_DATA_DIR "
        "when set, else ~/.cache/illada_eval/data for the benchmarks it holds, else the Hub")
    add("--confirm-run-unsafe-code", "--confirm_run_unsafe_code", action="store_true",
        help="allow tasks that run model-written code (HumanEval, MBPP) in the sandbox")
    add("--use-cache", "--use_cache", "-c", help="path prefix of lm-eval's request cache (one file per "
        "setting and process): a rerun of the same command skips every request that finished, so an "
        "interrupted run resumes")
    add("--model-args", "--model_args", "-a", help="more backend arguments and defaults for tasks that set "
        "nothing, key=value,... (e.g. threshold=0.9 for parallel decoding; settings below)")
    add("--gen-kwargs", "--gen_kwargs", help="override the tasks' generation_kwargs, key=value,... "
        "(e.g. max_gen_toks=256,block_length=32)")
    add("--scoring", help="override the tasks' likelihood settings, key=value,... with keys "
        f"{', '.join(SCORING_KEYS)} (e.g. scoring=elbo,mc_num=128 for the scoring ablation)")
    add("--chat-template", default="auto", choices=("auto", "on", "off"),
        help="apply the tokenizer's chat template: auto = as each task's metadata says (the instruct "
        "preset does)")
    add("--apply-chat-template", "--apply_chat_template", dest="chat_template", action="store_const",
        const="on", help="lm-eval's spelling of --chat-template on")
    add("--fewshot-as-multiturn", "--fewshot_as_multiturn", type=_yes_no, nargs="?", const=True,
        help="few-shot examples as chat turns (default: wherever the chat template is applied)")
    add("--system-instruction", "--system_instruction", help="a system instruction put before every prompt")
    add("--include-path", "--include_path", action="append", default=[], help="another folder of task YAMLs")
    add("--bootstrap-iters", "--bootstrap_iters", type=int, default=100000,
        help="bootstrap iterations for stderrs (0: none; default: %(default)s)")
    add("--verbosity", "-v", type=str.upper, default="WARNING", choices=LOG_LEVELS,
        help="log level (default: %(default)s)")
    add("--processes", type=int, default=1,
        help="data-parallel processes on this machine (one per GPU, or CPU processes over gloo), "
        "started with torchrun; same as `accelerate launch -m illada_eval`")
    return parser


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    if not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}")
    return int(text)


def _yes_no(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse(argv: list[str]) -> argparse.Namespace:
    """The checked flags; a bad value exits with status 2 and a message naming it (argparse's way)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check(args)
    except ValueError as error:
        parser.error(str(error))
    return args


def parse_pairs(text: str | None) -> dict[str, Any]:
    """``key=value,...`` as lm-eval reads it (numbers and booleans converted)."""
    if not text:
        return {}
    from lm_eval.utils import simple_parse_args_string  # a second to import: only when needed

    try:
        return simple_parse_args_string(text)
    except ValueError:
        raise ValueError(f"expected key=value,... but got {text!r}") from None


def check(args: argparse.Namespace) -> None:
    """Every value that can be checked without the model; a ValueError names the flag and the fix."""
    if args.limit is not None and (args.limit <= 0 or (args.limit >= 1 and args.limit != int(args.limit))):
        raise ValueError(f"--limit must be a whole number of documents >= 1 or a fraction in (0, 1), "
                         f"got {args.limit:g}")
    for flag, value, least in (("--num-fewshot", args.num_fewshot, 0), ("--processes", args.processes, 1),
                               ("--bootstrap-iters", args.bootstrap_iters, 0),
                               ("--max-batch-size", args.max_batch_size, 1)):
        if value is not None and value < least:
            raise ValueError(f"{flag} must be at least {least}, got {value}")
    for folder in args.include_path:
        if not Path(folder).expanduser().is_dir():
            raise ValueError(f"--include-path {folder}: no such folder of task YAMLs")
    if args.data_dir is not None and not Path(args.data_dir).expanduser().is_dir():
        raise ValueError(f"--data-dir {args.data_dir}: no such folder; build the mirror there with "
                         f"`illada-eval data pull --data-dir {args.data_dir}`")
    check_dtype(args.dtype, "--dtype")
    protocol_for_backend(args.preset, "hf" if args.model.startswith(HF_PREFIX) else "illada")
    if args.model.startswith(HF_PREFIX):
        if not args.model[len(HF_PREFIX):]:
            raise ValueError("--model hf: needs a model after the colon, e.g. hf:Qwen/Qwen2.5-7B")
        parse_pairs(args.model_args)  # lm-eval's hf backend checks its own keys
        parse_pairs(args.gen_kwargs)
    else:
        if args.model_args:  # its key names come from the backend, whose import takes seconds
            check_model_args(parse_pairs(args.model_args), "--model-args")
        parse_settings(parse_pairs(args.gen_kwargs), DIFFUSION_GEN_KWARGS, "--gen-kwargs")
    parse_settings(parse_pairs(args.scoring), SCORING_KEYS, "--scoring")
    logging.getLogger(__name__).debug("arguments checked: %s", vars(args))


def check_model_args(model_args: dict[str, Any], where: str) -> dict[str, Any]:
    """``model_args`` of the diffusion backend checked by the backend's own definitions."""
    from illada_eval.adapter import model_arg_names

    checked = parse_settings(model_args, model_arg_names(), where)
    check_dtype(checked.get("dtype"), where)
    return checked
