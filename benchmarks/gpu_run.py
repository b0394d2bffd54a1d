"""The prepared GPU run: the step-cost and generation benchmarks on a randomly initialised
network of about 1B parameters in bfloat16 (LLaDA-8B's vocabulary and head count, 14 layers of
2048), on one GPU within 5 minutes; writes results/benchmarks/gpu_run.json.

The generation configs run cheapest first, and one not started within ``--budget-s`` of the
start is skipped (and listed in the results), so the run ends in about that time even on a
slower GPU than expected.

The network's outputs mean nothing (accuracy is not reported); speed and token identity are.
``--smoke`` runs the same code on a tiny network on the CPU in seconds, to check the script
where no GPU is.

    python benchmarks/gpu_run.py                # on the GPU machine
    OMP_NUM_THREADS=1 python benchmarks/gpu_run.py --smoke --output /tmp/gpu_run.json
"""
from __future__ import annotations

import argparse
import time

import torch

from _common import load_demo, machine_line, parse_checking_load, write_results
from generation import BASELINES, CONFIGS, random_1b, run_configs, sanity_prompts
from step_cost import Shape, block_steps, measure, report

STEP_SHAPES = {
    "gpu": Shape(hidden=2048, intermediate=5632, layers=14, batch=8),
    "smoke": Shape(vocab=128, heads=4, hidden=32, intermediate=64, layers=2, canvas=64,
                   block_start=32, block=8),
}
GENERATION = {  # prompts, configs, modes
    "gpu": (64, CONFIGS, ("reference", "Fast-dLLM", "ours")),
    "smoke": (4, ("8/8", "16/8"), ("reference", "Fast-dLLM", "ours")),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny network on the CPU: checks the script")
    parser.add_argument("--steps-per-block", type=int, default=4)
    parser.add_argument("--budget-s", type=float, default=240,
                        help="start no generation config after this many seconds")
    parser.add_argument("--output", default="results/benchmarks/gpu_run.json")
    args, load = parse_checking_load(parser)
    size = "smoke" if args.smoke else "gpu"
    device, dtype = ("cpu", torch.float32) if args.smoke else ("cuda", torch.bfloat16)
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("no GPU here: run this on the GPU machine, or pass --smoke to check the script")
    begin = time.perf_counter()

    with torch.inference_mode():
        shape = STEP_SHAPES[size]
        network = shape.network(dtype, device)
        calls = measure(network, shape, args.steps_per_block, repeats=3, device=device)
        steps = block_steps(calls, shape.block, args.steps_per_block)
        report(calls, steps, args.steps_per_block)
        del network

        count, configs, modes = GENERATION[size]
        _, tokenizer = load_demo()
        if args.smoke:
            model = shape.network(dtype, device, tokenizer.mask_token_id, tokenizer.eos_token_id)
        else:
            model = random_1b(tokenizer, dtype, device)
        prompts, answers = sanity_prompts(tokenizer, count)
        generation = run_configs(model, tokenizer, prompts, answers, configs, modes,
                                 deadline=begin + args.budget_s)

    settings = {**vars(args), "step_shape": vars(STEP_SHAPES[size]), "generation_prompts": count,
                "generation_modes": list(modes), "baselines": list(BASELINES),
                "skipped_configs": [config for config in configs if config not in generation],
                "parameters": sum(p.numel() for p in model.parameters()),
                "total_wall_s": time.perf_counter() - begin}
    write_results(args.output, machine_line(), settings, load,
                  step_cost={"calls": calls, "block_steps": steps}, generation=generation)


if __name__ == "__main__":
    main()
