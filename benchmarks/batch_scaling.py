"""Batch scaling: requests per second at batch 1, 8 and 32, side by side in one run.

On the demo model and the held-out sanity docs:
- generation: the sanity generation task's settings (variable length, blocks of 8, at most 16
  tokens, stop at a newline), prompts sorted by length (as the adapter's batches are) and given
  to ``generate`` in chunks of the batch size;
- fast generation: the same prompts at 256/32 with our fast paths (variable length, threshold
  0.9, dual cache), where a block takes as many steps as its slowest row;
- confidence: every option of the sanity multiple-choice questions, ``batch_size`` pairs per call;
- ELBO: the same options with ``--mc-num`` draws (LLaDA's estimator), ``batch_size`` rows per call.
A request is one prompt (generation) or one (prompt, option) pair (scoring). Each timing is the
fastest of ``--repeats`` runs; the table also says whether the outputs equal those of batch 1.
Writes results/benchmarks/batch_scaling.json.

    OMP_NUM_THREADS=1 python benchmarks/batch_scaling.py [--questions 64] [--repeats 3]
"""
from __future__ import annotations

import argparse

import torch

from illada_eval.model import confidence_score, elbo_loglikelihood, generate
from illada_eval.train.synthetic import sanity_docs

from _common import load_demo, machine_line, parse_checking_load, timed, write_results

BATCH_SIZES = (1, 8, 32)


def workloads(model, tokenizer, docs: list[dict], mc_num: int) -> dict:
    """Each workload as (number of requests, run(batch size) -> outputs)."""
    mask_id = model.config.mask_token_id
    prompts = [tokenizer.encode(doc["prompt"]) for doc in docs]
    pair_prompts = [p for p, doc in zip(prompts, docs) for _ in doc["choices"]]
    options = [tokenizer.encode(choice) for doc in docs for choice in doc["choices"]]
    newline = tokenizer.encode("\n")
    by_length = sorted(prompts, key=len, reverse=True)  # little padding within a batch

    def generate_in_chunks(batch: int, **settings) -> list[list[int]]:
        return [tokens for start in range(0, len(by_length), batch)
                for tokens in generate(model, by_length[start:start + batch], mask_id=mask_id,
                                       variable_length=True, eos_id=tokenizer.eos_token_id,
                                       **settings).tokens]

    def generation(batch: int) -> list[list[int]]:
        return generate_in_chunks(batch, gen_length=16, block_length=8, steps=16, stop=[newline])

    def fast_generation(batch: int) -> list[list[int]]:
        return generate_in_chunks(batch, gen_length=256, block_length=32, steps=256, threshold=0.9,
                                  kv_cache="dual")

    def confidence(batch: int) -> list[float]:
        return confidence_score(model, pair_prompts, options, mask_id=mask_id, batch_size=batch)

    def elbo(batch: int) -> list[float]:
        return elbo_loglikelihood(model, pair_prompts, options, mask_id=mask_id, mc_num=mc_num,
                                  batch_size=batch)

    return {"generation": (len(prompts), generation),
            "fast generation 256/32": (len(prompts), fast_generation),
            "confidence": (len(options), confidence), f"ELBO {mc_num}": (len(options), elbo)}


def same_outputs(a, b) -> bool:
    """Equal token lists, or scores equal up to float rounding of a different batch layout."""
    if a and isinstance(a[0], list):
        return a == b
    return torch.allclose(torch.tensor(a), torch.tensor(b), rtol=1e-4, atol=1e-4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=64,
                        help="sanity docs: as many generation prompts, four times as many scoring requests")
    parser.add_argument("--mc-num", type=int, default=32, help="ELBO draws (the sanity ELBO task uses 32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="results/benchmarks/batch_scaling.json")
    args, load = parse_checking_load(parser)

    torch.manual_seed(0)
    model, tokenizer = load_demo()
    docs = sanity_docs(args.questions)
    machine = machine_line()
    print(f"demo model, {len(docs)} sanity docs; {machine}")

    rows = {}
    for name, (requests, run) in workloads(model, tokenizer, docs, args.mc_num).items():
        run(BATCH_SIZES[-1])  # warm-up: first calls pay for allocations
        baseline = None
        rows[name] = {"requests": requests, "batches": {}}
        for batch in BATCH_SIZES:
            outputs, wall = timed(lambda: run(batch), args.repeats)
            baseline = baseline if baseline is not None else outputs
            rows[name]["batches"][batch] = {"wall_s": wall, "requests_per_s": requests / wall,
                                            "same_as_batch_1": same_outputs(outputs, baseline)}

    rate_header = "".join(f"{f'req/s b={b}':>12}" for b in BATCH_SIZES)
    ratio_header = "".join(f"{f'× b={b}':>9}" for b in BATCH_SIZES[1:])
    print(f"{'workload':<24}{'requests':>9}{rate_header}{ratio_header}{'same as b=1':>13}")
    for name, row in rows.items():
        rates = [row["batches"][b]["requests_per_s"] for b in BATCH_SIZES]
        same = all(row["batches"][b]["same_as_batch_1"] for b in BATCH_SIZES)
        print(f"{name:<24}{row['requests']:>9}{''.join(f'{r:>12.1f}' for r in rates)}"
              f"{''.join(f'{r / rates[0]:>9.1f}' for r in rates[1:])}{'yes' if same else 'no':>13}")
    print("× = requests/s at that batch / requests/s at batch 1; fastest of "
          f"{args.repeats} runs each")
    write_results(args.output, machine, vars(args), load, workloads=rows)


if __name__ == "__main__":
    main()
