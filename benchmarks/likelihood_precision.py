"""Likelihood precision: standard error of the Monte Carlo ELBO against the forward passes it costs.

LLaDA's stratified estimator (``mask_sampling="llada"``) against ours (``"antithetic"``: a mask
and its complement; ``"balanced"``: windows of one random cyclic order), on real multiple-choice
requests from the offline pack: the gold answer of ARC-Challenge (test), HellaSwag and PIQA
(validation) questions, with the context and continuation the lm-eval tasks in tasks/ build.
The demo model's tokenizer is character-level over printable ASCII: requests holding any other
character (they would become <unk>) are skipped, as are requests longer than ``--max-length``.

For every request, estimator and ``mc_num``, the estimate is repeated with ``--seeds`` seeds;
the standard error is their standard deviation, averaged over the requests of a continuation-
length bucket. Forward passes are the sequences the model actually ran (duplicate masks are
merged, so short continuations cost fewer than ``mc_num``). Each estimator's standard error is
fitted by a power law of its passes; the table gives, per bucket, the passes each estimator needs
to reach LLaDA's precision at ``mc_num=128``, the ratio to LLaDA's passes, and whether it is
within ``--budget`` (32: the issue's target). Writes results/benchmarks/likelihood_precision.json.

    OMP_NUM_THREADS=1 python benchmarks/likelihood_precision.py [--per-bucket 6] [--seeds 8]
"""
from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Iterator, Sequence

import datasets
import torch
import transformers
from lm_eval.tasks.hellaswag.utils import process_docs

from illada_eval.adapter import CountingModel
from illada_eval.data import default_data_dir, load_benchmark
from illada_eval.model import ILLaDAForMaskedLM, elbo_loglikelihood

from _common import load_demo, machine_line, parse_checking_load, write_results

ESTIMATORS = ("llada", "antithetic", "balanced")
BUCKETS = {"2-15": (2, 15), "16-47": (16, 47), "48+": (48, 10**9)}  # continuation tokens


def gold_requests(benchmark: str, docs: int) -> Iterator[tuple[str, str, str]]:
    """(benchmark, context, continuation) of the gold answers, as the task YAMLs in tasks/ build them."""
    split = "test" if benchmark == "arc_challenge" else "validation"
    rows = load_benchmark(benchmark, data_dir=default_data_dir())[split].select(range(docs))
    for row in process_docs(rows) if benchmark == "hellaswag" else rows:
        if benchmark == "arc_challenge":
            gold = row["choices"]["text"][row["choices"]["label"].index(row["answerKey"])]
            yield benchmark, f"Question: {row['question']}\nAnswer:", " " + gold
        elif benchmark == "hellaswag":
            yield benchmark, row["query"], " " + row["choices"][row["gold"]]
        else:  # piqa
            yield benchmark, f"Question: {row['goal']}\nAnswer:", " " + (row["sol1"], row["sol2"])[row["label"]]


def pick_requests(tokenizer, per_bucket: int, max_length: int) -> dict[str, list[dict]]:
    """``per_bucket`` requests per continuation-length bucket, taken in turn from the benchmarks."""
    streams = [gold_requests(name, 1000) for name in ("arc_challenge", "hellaswag", "piqa")]
    buckets: dict[str, list[dict]] = {name: [] for name in BUCKETS}
    for benchmark, context, continuation in itertools.chain.from_iterable(zip(*streams)):
        prompt, cont = tokenizer.encode(context), tokenizer.encode(continuation)
        if tokenizer.unk_token_id in prompt + cont or len(prompt) + len(cont) > max_length:
            continue
        for name, (low, high) in BUCKETS.items():
            if low <= len(cont) <= high and len(buckets[name]) < per_bucket:
                buckets[name].append({"benchmark": benchmark, "prompt": prompt, "continuation": cont})
        if all(len(b) == per_bucket for b in buckets.values()):
            return buckets
    raise ValueError(f"fewer than {per_bucket} usable requests in some bucket: lower --per-bucket "
                     "or raise --max-length")


def power_law(passes: Sequence[float], errors: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit of ``log(error) = intercept + slope * log(passes)``: (intercept, slope).

    One line through all measured points is far less sensitive to the seed noise of any single
    standard error than interpolating between neighbours.
    """
    x = torch.tensor(passes, dtype=torch.float64).log()
    y = torch.tensor(errors, dtype=torch.float64).log()
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    return (y.mean() - slope * x.mean()).item(), slope.item()


def error_at(fit: tuple[float, float], passes: float) -> float:
    intercept, slope = fit
    return math.exp(intercept) * passes**slope


def passes_for(fit: tuple[float, float], error: float) -> float:
    """The passes at which a fitted power law reaches ``error``."""
    intercept, slope = fit
    return math.exp((math.log(error) - intercept) / slope)


def measure(network, requests: list[dict], estimator: str, mc_num: int, seeds: int,
            batch_size: int) -> tuple[float, float]:
    """Mean over requests of the standard error across seeds, and the mean passes per request."""
    prompts = [r["prompt"] for r in requests]
    continuations = [r["continuation"] for r in requests]
    model = CountingModel(network)
    estimates = torch.tensor([
        elbo_loglikelihood(model, prompts, continuations, mask_id=network.config.mask_token_id,
                           mc_num=mc_num, seed=seed, mask_sampling=estimator, batch_size=batch_size)
        for seed in range(seeds)
    ], dtype=torch.float64)  # [seeds, requests]
    return estimates.std(dim=0).mean().item(), model.sequences / (seeds * len(requests))


def compare(by_estimator: dict[str, dict], budget: int) -> None:
    """Adds to each estimator's row the passes it needs for LLaDA's precision at its last point."""
    llada = by_estimator["llada"]
    target = error_at(power_law(llada["passes"], llada["se"]), llada["passes"][-1])
    for row in by_estimator.values():
        needed = passes_for(power_law(row["passes"], row["se"]), target)
        row.update(target_se=target, passes_to_target=needed, ratio=llada["passes"][-1] / needed,
                   extrapolated=not 0.999 * row["passes"][0] <= needed <= 1.001 * row["passes"][-1],
                   within_budget=needed <= budget)


def pooled(rows: list[dict], sizes: list[int]) -> dict:
    """Standard errors and passes of several buckets, averaged over all their requests."""
    return {key: [sum(size * row[key][i] for row, size in zip(rows, sizes)) / sum(sizes)
                  for i in range(len(rows[0][key]))]
            for key in ("se", "passes")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-bucket", type=int, default=6, help="requests per continuation-length bucket")
    parser.add_argument("--seeds", type=int, default=8, help="repetitions per request for the standard error")
    parser.add_argument("--mc-nums", type=int, nargs="+", default=[8, 16, 32, 64, 128],
                        help="draws per estimate; the last one sets LLaDA's target precision")
    parser.add_argument("--budget", type=int, default=32, help="the passes the target allows our estimators")
    parser.add_argument("--max-length", type=int, default=128, help="longest prompt + continuation (tokens)")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per model call")
    parser.add_argument("--random-init", action="store_true",
                        help="the demo architecture with fresh random weights instead of the trained demo")
    parser.add_argument("--output", default="results/benchmarks/likelihood_precision.json")
    args, load = parse_checking_load(parser)

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()  # over-long requests are skipped, not truncated
    torch.manual_seed(0)
    model, tokenizer = load_demo()
    if args.random_init:
        model = ILLaDAForMaskedLM(model.config).eval()
    buckets = pick_requests(tokenizer, args.per_bucket, args.max_length)
    machine = machine_line()
    print(f"{'random-init' if args.random_init else 'demo'} model; {args.per_bucket} gold-answer "
          f"requests per bucket (ARC-Challenge, HellaSwag, PIQA), {args.seeds} seeds; {machine}")

    results: dict[str, dict] = {}
    for bucket, requests in buckets.items():
        results[bucket] = {}
        for estimator in ESTIMATORS:
            points = [measure(model, requests, estimator, n, args.seeds, args.batch_size)
                      for n in args.mc_nums]
            results[bucket][estimator] = {"se": [se for se, _ in points], "passes": [p for _, p in points]}
    sizes = [len(requests) for requests in buckets.values()]
    results["all"] = {e: pooled([results[b][e] for b in buckets], sizes) for e in ESTIMATORS}
    for by_estimator in results.values():
        compare(by_estimator, args.budget)

    labels = {b: f"{b} tok ({len(r)})" for b, r in buckets.items()} | {"all": f"all ({sum(sizes)})"}
    print_table(results, labels, args.mc_nums, args.budget)
    write_results(args.output, machine, vars(args), load, buckets=results,
                  requests={b: [{"benchmark": r["benchmark"], "prompt_tokens": len(r["prompt"]),
                                 "continuation_tokens": len(r["continuation"])} for r in rs]
                            for b, rs in buckets.items()})


def print_table(results: dict[str, dict], labels: dict[str, str], mc_nums: list[int], budget: int) -> None:
    se_header = "".join(f"{f'SE n={n}':>9}" for n in mc_nums)
    print(f"{'continuation':<15}{'estimator':<11}{se_header}{f'passes n={mc_nums[-1]}':>14}"
          f"{'passes→target':>15}{'passes ÷':>10}{f'≤{budget}':>5}")
    for bucket, by_estimator in results.items():
        label = labels[bucket]
        for estimator, row in by_estimator.items():
            needed = f"{row['passes_to_target']:.1f}{'*' if row['extrapolated'] else ' '}"
            print(f"{label:<15}{estimator:<11}{''.join(f'{se:>9.3f}' for se in row['se'])}"
                  f"{row['passes'][-1]:>14.1f}{needed:>15}{row['ratio']:>10.1f}"
                  f"{'yes' if row['within_budget'] else 'no':>5}")
            label = ""
    print(f"SE: standard deviation over seeds of the log-likelihood estimate (nats), mean over requests. "
          f"target: LLaDA's SE at n={mc_nums[-1]} (power-law fit over the n column); passes→target: "
          f"from each estimator's fit, * = outside its measured range; passes ÷ = LLaDA's passes at "
          f"n={mc_nums[-1]} / passes→target")


if __name__ == "__main__":
    main()
