"""Generation speed: LLaDA's reference procedure against the fast paths, side by side in one run.

On the demo model and the held-out sanity generation prompts, with a budget of ``--gen-length``
tokens in blocks of ``--block-length``:
- reference: fixed length, one token per step, every block decoded (LLaDA's procedure);
- variable-length: block after block, stopping once a block holds EOS (iLLaDA);
- threshold: fixed length, every masked token with confidence > 0.9 revealed per step;
- variable + threshold: both.
Prints model calls, useful tokens/s (tokens before EOS), wall time, accuracy and the ratios to
the reference, and writes the numbers to results/benchmarks/generation.json.

    python benchmarks/generation.py [--prompts 64] [--gen-length 224] [--block-length 32]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer

from illada_eval import load_model
from illada_eval.evaluate import DEMO_MODEL_DIR
from illada_eval.model import generate
from illada_eval.train.synthetic import sanity_docs

from _common import machine_line

MODES = {
    "reference": dict(variable_length=False, threshold=None, stop_early=False),
    "variable-length": dict(variable_length=True, threshold=None),
    "threshold 0.9": dict(variable_length=False, threshold=0.9, stop_early=False),
    "variable + threshold": dict(variable_length=True, threshold=0.9),
}


def run_mode(model, prompts, answers, tokenizer, gen_length, block_length, settings) -> dict:
    start = time.perf_counter()
    out = generate(model, prompts, mask_id=model.config.mask_token_id, gen_length=gen_length,
                   block_length=block_length, steps=gen_length, eos_id=tokenizer.eos_token_id,
                   **settings)
    wall = time.perf_counter() - start
    texts = [tokenizer.decode(tokens) for tokens in out.tokens]
    useful = sum(len(tokens) for tokens in out.tokens)
    return {
        "nfe": out.nfe,
        "useful_tokens": useful,
        "wall_s": wall,
        "useful_tokens_per_s": useful / wall,
        "accuracy": sum(t.strip() == a for t, a in zip(texts, answers)) / len(answers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--gen-length", type=int, default=224)
    parser.add_argument("--block-length", type=int, default=32)
    parser.add_argument("--output", default="results/benchmarks/generation.json")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = load_model(DEMO_MODEL_DIR)
    tokenizer = AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
    docs = sanity_docs(args.prompts)
    prompts = [tokenizer.encode(doc["prompt"]) for doc in docs]
    answers = [doc["answer"] for doc in docs]
    machine = machine_line()
    print(f"demo model, {len(prompts)} sanity prompts, gen_length {args.gen_length}, "
          f"block {args.block_length}; {machine}")

    rows = {name: run_mode(model, prompts, answers, tokenizer, args.gen_length, args.block_length, s)
            for name, s in MODES.items()}
    ref = rows["reference"]
    print(f"{'mode':<22}{'NFE':>7}{'useful tok/s':>14}{'wall s':>9}{'acc':>7}"
          f"{'NFE ÷':>8}{'tok/s ×':>9}{'Δacc':>7}")
    for name, row in rows.items():
        print(f"{name:<22}{row['nfe']:>7}{row['useful_tokens_per_s']:>14.1f}{row['wall_s']:>9.2f}"
              f"{row['accuracy']:>7.3f}{ref['nfe'] / row['nfe']:>8.1f}"
              f"{row['useful_tokens_per_s'] / ref['useful_tokens_per_s']:>9.1f}"
              f"{100 * (row['accuracy'] - ref['accuracy']):>+7.1f}")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"machine": machine, "settings": vars(args), "modes": rows}, indent=2) + "\n")
    print(f"written: {output}")


if __name__ == "__main__":
    main()
