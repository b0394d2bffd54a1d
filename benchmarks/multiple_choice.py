"""Multiple-choice cost: confidence scoring against the 128-sample Monte Carlo ELBO, side by side.

On the demo model and the held-out sanity multiple-choice docs (the illada_sanity_mc task: the
prompt, then each of four equal-length answers with no delimiter), every option of every
question is scored with:
- confidence: iLLaDA's confidence scoring (one forward pass per answer token);
- ELBO 128 (LLaDA): LLaDA's estimator with ``mc_num=128`` (duplicate masks merged);
- ELBO 32 balanced: our lower-variance estimator with a quarter of the draws.
Prints forward passes (sequences through the model) and model calls per question, wall seconds
per question, accuracy, and the ratios to ELBO 128, and writes
results/benchmarks/multiple_choice.json.

    OMP_NUM_THREADS=1 python benchmarks/multiple_choice.py [--questions 200] [--batch-size 32]
"""
from __future__ import annotations

import argparse
from functools import partial

import torch

from illada_eval.adapter import CountingModel
from illada_eval.model import confidence_score, elbo_loglikelihood
from illada_eval.train.synthetic import sanity_docs

from _common import load_demo, machine_line, parse_checking_load, timed, write_results

METHODS = {
    "confidence": confidence_score,
    "ELBO 128 (LLaDA)": partial(elbo_loglikelihood, mc_num=128, mask_sampling="llada"),
    "ELBO 32 balanced": partial(elbo_loglikelihood, mc_num=32, mask_sampling="balanced"),
}
REFERENCE = "ELBO 128 (LLaDA)"


def run_method(network, score, docs: list[dict], tokenizer, batch_size: int) -> dict:
    prompts = [tokenizer.encode(doc["prompt"]) for doc in docs for _ in doc["choices"]]
    options = [tokenizer.encode(choice) for doc in docs for choice in doc["choices"]]
    model = CountingModel(network)
    scores, wall = timed(lambda: score(model, prompts, options, mask_id=network.config.mask_token_id,
                                       batch_size=batch_size))
    by_question = torch.tensor(scores).view(len(docs), -1)  # every sanity question has 4 options
    labels = torch.tensor([doc["label"] for doc in docs])
    return {
        "passes_per_question": model.sequences / len(docs),
        "calls_per_question": model.calls / len(docs),
        "wall_s_per_question": wall / len(docs),
        "accuracy": (by_question.argmax(dim=1) == labels).double().mean().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=200, help="held-out sanity MC docs (the task uses 200)")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per model call")
    parser.add_argument("--output", default="results/benchmarks/multiple_choice.json")
    args, load = parse_checking_load(parser)

    torch.manual_seed(0)
    model, tokenizer = load_demo()
    docs = sanity_docs(args.questions)
    machine = machine_line()
    print(f"demo model, {len(docs)} sanity MC questions x 4 options, batch {args.batch_size}; {machine}")

    rows = {name: run_method(model, score, docs, tokenizer, args.batch_size) for name, score in METHODS.items()}
    ref = rows[REFERENCE]
    print(f"{'scoring':<18}{'passes/q':>10}{'calls/q':>9}{'wall s/q':>10}{'acc':>7}"
          f"{'passes ÷':>10}{'wall ÷':>8}{'Δacc':>7}")
    for name, row in rows.items():
        print(f"{name:<18}{row['passes_per_question']:>10.1f}{row['calls_per_question']:>9.2f}"
              f"{row['wall_s_per_question']:>10.4f}{row['accuracy']:>7.3f}"
              f"{ref['passes_per_question'] / row['passes_per_question']:>10.1f}"
              f"{ref['wall_s_per_question'] / row['wall_s_per_question']:>8.1f}"
              f"{100 * (row['accuracy'] - ref['accuracy']):>+7.1f}")
    print(f"passes: sequences through the model; ÷ = {REFERENCE} / this row; Δacc in points")
    write_results(args.output, machine, vars(args), load, methods=rows)


if __name__ == "__main__":
    main()
