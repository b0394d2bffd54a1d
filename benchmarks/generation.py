"""Generation speed: LLaDA's reference procedure, a Fast-dLLM-equivalent configuration and ours,
with the fast paths one at a time, side by side in one run.

On the held-out sanity generation prompts, for each ``--configs`` budget/block pair:
- reference: fixed length, one token per step, every block decoded (LLaDA's procedure);
- Fast-dLLM: fixed length, every block decoded, threshold 0.9, dual cache (Fast-dLLM's fastest
  configuration, run by this code);
- ours: variable length (stop after the block holding EOS), threshold 0.9, dual cache;
- one fast path at a time (variable length, threshold 0.9, prefix or dual cache) and two pairs.
Prints model calls (NFE), useful tokens/s (tokens before EOS), wall time, accuracy and the ratios
to the reference and to Fast-dLLM, and writes the numbers to results/benchmarks/generation.json.

``--model demo`` (default) is the embedded demo checkpoint; ``--model random-1b`` a randomly
initialised network of about 1B parameters with LLaDA-8B's vocabulary and head count (speed
only: its accuracy means nothing), meant for a GPU in bfloat16 (``benchmarks/gpu_run.py``).

    OMP_NUM_THREADS=1 python benchmarks/generation.py [--prompts 64] [--configs 32/8 16/8]
"""
from __future__ import annotations

import argparse
import time

import torch

from illada_eval.model import generate
from illada_eval.train.synthetic import sanity_docs

from _common import load_demo, machine_line, parse_checking_load, random_network, timed, write_results

MODES = {
    "reference": dict(variable_length=False, stop_early=False),
    "Fast-dLLM": dict(variable_length=False, threshold=0.9, kv_cache="dual", stop_early=False),
    "ours": dict(variable_length=True, threshold=0.9, kv_cache="dual"),
    "variable-length": dict(variable_length=True),
    "threshold 0.9": dict(variable_length=False, threshold=0.9, stop_early=False),
    "prefix cache": dict(variable_length=False, kv_cache="prefix", stop_early=False),
    "dual cache": dict(variable_length=False, kv_cache="dual", stop_early=False),
    "variable + threshold": dict(variable_length=True, threshold=0.9),
    "variable + dual": dict(variable_length=True, kv_cache="dual"),
}
BASELINES = ("reference", "Fast-dLLM")
CONFIGS = ("8/8", "32/8", "64/16", "256/32")


def random_1b(tokenizer, dtype: torch.dtype, device: str):
    """About 1.0B parameters: LLaDA-8B's vocabulary (126,464) and 32 heads, 14 layers of 2048."""
    return random_network(vocab=126464, hidden=2048, intermediate=5632, layers=14, heads=32,
                          mask_id=tokenizer.mask_token_id, eos_id=tokenizer.eos_token_id,
                          dtype=dtype, device=device)


def run_mode(model, prompts, answers, tokenizer, gen_length, block_length, settings, repeats=1) -> dict:
    out, wall = timed(lambda: generate(
        model, prompts, mask_id=model.config.mask_token_id, gen_length=gen_length,
        block_length=block_length, steps=gen_length, eos_id=tokenizer.eos_token_id, **settings),
        repeats)
    texts = [tokenizer.decode(tokens) for tokens in out.tokens]
    useful = sum(len(tokens) for tokens in out.tokens)
    return {
        "nfe": out.nfe,
        "useful_tokens": useful,
        "wall_s": wall,
        "useful_tokens_per_s": useful / wall,
        "accuracy": sum(t.strip() == a for t, a in zip(texts, answers)) / len(answers),
    }


def add_ratios(rows: dict[str, dict]) -> None:
    """Each mode's useful tokens/s over each baseline's, and its accuracy difference in points."""
    for row in rows.values():
        for base in BASELINES:
            if base in rows:
                row[f"x_{base}"] = row["useful_tokens_per_s"] / max(rows[base]["useful_tokens_per_s"], 1e-9)
                row[f"accuracy_vs_{base}"] = 100 * (row["accuracy"] - rows[base]["accuracy"])


def print_table(rows: dict[str, dict]) -> None:
    bases = [b for b in BASELINES if b in rows]
    print(f"{'mode':<22}{'NFE':>6}{'useful tok/s':>14}{'wall s':>9}{'acc':>7}"
          + "".join(f"{'× ' + b:>13}{'Δacc':>7}" for b in bases))
    for name, row in rows.items():
        print(f"{name:<22}{row['nfe']:>6}{row['useful_tokens_per_s']:>14.1f}{row['wall_s']:>9.2f}"
              f"{row['accuracy']:>7.3f}"
              + "".join(f"{row[f'x_{b}']:>13.1f}{row[f'accuracy_vs_{b}']:>+7.1f}" for b in bases))


def run_configs(model, tokenizer, prompts, answers, configs, modes, repeats=1,
                deadline: float | None = None) -> dict:
    """Every mode at every ``gen_length/block_length`` config, in order. A config not started by
    ``deadline`` (a ``time.perf_counter()`` value) is skipped, so a run with a time budget ends
    with the configs it finished."""
    results = {}
    for config in configs:
        if deadline is not None and time.perf_counter() > deadline:
            print(f"\n{config}: skipped, the time budget is spent")
            continue
        gen_length, block_length = map(int, config.split("/"))
        print(f"\ngen_length {gen_length}, block {block_length}")
        for name in modes:  # warm-up: first calls of a shape pay for allocations
            run_mode(model, prompts[:2], answers[:2], tokenizer, gen_length, block_length, MODES[name])
        rows = {name: run_mode(model, prompts, answers, tokenizer, gen_length, block_length,
                               MODES[name], repeats)
                for name in modes}
        add_ratios(rows)
        print_table(rows)
        results[config] = rows
    return results


def sanity_prompts(tokenizer, count: int) -> tuple[list[list[int]], list[str]]:
    docs = sanity_docs(count)
    return [tokenizer.encode(doc["prompt"]) for doc in docs], [doc["answer"] for doc in docs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS),
                        help="gen_length/block_length pairs, each run with every mode")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--repeats", type=int, default=1, help="timings are the fastest of these runs")
    parser.add_argument("--model", choices=["demo", "random-1b"], default="demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--output", default="results/benchmarks/generation.json")
    args, load = parse_checking_load(parser)

    dtype = getattr(torch, args.dtype)
    model, tokenizer = load_demo(dtype=dtype, device=args.device)
    if args.model == "random-1b":
        model = random_1b(tokenizer, dtype, args.device)
    parameters = sum(p.numel() for p in model.parameters())
    prompts, answers = sanity_prompts(tokenizer, args.prompts)
    machine = machine_line()
    print(f"{args.model} model ({parameters / 1e6:.1f}M parameters, {args.dtype}, {args.device}), "
          f"{len(prompts)} sanity prompts; {machine}")
    with torch.inference_mode():
        results = run_configs(model, tokenizer, prompts, answers, args.configs, args.modes, args.repeats)
    write_results(args.output, machine, {**vars(args), "parameters": parameters}, load, configs=results)


if __name__ == "__main__":
    main()
