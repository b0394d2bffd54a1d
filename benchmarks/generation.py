"""Generation speed: LLaDA's reference procedure against the fast paths, side by side in one run.

On the held-out sanity generation prompts, for each ``--configs`` budget/block pair:
- reference: fixed length, one token per step, every block decoded (LLaDA's procedure);
- variable-length: block after block, stopping once a block holds EOS (iLLaDA);
- threshold 0.9: fixed length, every masked token with confidence > 0.9 revealed per step;
- prefix / dual cache: fixed length, one token per step, Fast-dLLM's approximate caches;
- combinations of the above.
Prints model calls (NFE), useful tokens/s (tokens before EOS), wall time, accuracy and the ratios
to the reference, and writes the numbers to results/benchmarks/generation.json.

``--model demo`` (default) is the embedded demo checkpoint; ``--model random-1b`` a randomly
initialised network of about 1B parameters (speed only: its accuracy means nothing), meant for
a GPU in bfloat16 (``--device cuda --dtype bfloat16``).

    python benchmarks/generation.py [--prompts 64] [--configs 256/32 32/8 8/8]
"""
from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoTokenizer

from illada_eval.model import load_model
from illada_eval.adapter import DEMO_MODEL_DIR
from illada_eval.model import ILLaDAConfig, ILLaDAForMaskedLM, generate
from illada_eval.train.synthetic import sanity_docs

from _common import machine_line, write_results

MODES = {
    "reference": dict(variable_length=False, stop_early=False),
    "variable-length": dict(variable_length=True),
    "threshold 0.9": dict(variable_length=False, threshold=0.9, stop_early=False),
    "prefix cache": dict(variable_length=False, kv_cache="prefix", stop_early=False),
    "dual cache": dict(variable_length=False, kv_cache="dual", stop_early=False),
    "variable + threshold": dict(variable_length=True, threshold=0.9),
    "variable + dual": dict(variable_length=True, kv_cache="dual"),
    "variable + threshold + dual": dict(variable_length=True, threshold=0.9, kv_cache="dual"),
}


def random_1b(tokenizer, dtype: torch.dtype, device: str) -> ILLaDAForMaskedLM:
    """iLLaDA's architecture at about 1.0B parameters (20 layers of 2048, GQA 16/4, 32k vocab)."""
    config = ILLaDAConfig(
        vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=20,
        num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=4096,
        mask_token_id=tokenizer.mask_token_id or 5, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.device(device):
        return ILLaDAForMaskedLM(config).to(dtype).eval()


def run_mode(model, prompts, answers, tokenizer, gen_length, block_length, settings) -> dict:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = generate(model, prompts, mask_id=model.config.mask_token_id, gen_length=gen_length,
                   block_length=block_length, steps=gen_length, eos_id=tokenizer.eos_token_id,
                   **settings)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
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


def print_table(rows: dict[str, dict]) -> None:
    ref = rows["reference"]
    print(f"{'mode':<28}{'NFE':>6}{'useful tok/s':>14}{'wall s':>9}{'acc':>7}"
          f"{'NFE ÷':>8}{'tok/s ×':>9}{'wall ÷':>8}{'Δacc':>7}")
    for name, row in rows.items():
        print(f"{name:<28}{row['nfe']:>6}{row['useful_tokens_per_s']:>14.1f}{row['wall_s']:>9.2f}"
              f"{row['accuracy']:>7.3f}{ref['nfe'] / row['nfe']:>8.1f}"
              f"{row['useful_tokens_per_s'] / max(ref['useful_tokens_per_s'], 1e-9):>9.1f}"
              f"{ref['wall_s'] / row['wall_s']:>8.1f}"
              f"{100 * (row['accuracy'] - ref['accuracy']):>+7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--configs", nargs="+", default=["256/32", "32/8", "8/8"],
                        help="gen_length/block_length pairs, each run with every mode")
    parser.add_argument("--model", choices=["demo", "random-1b"], default="demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--output", default="results/benchmarks/generation.json")
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
    dtype = getattr(torch, args.dtype)
    if args.model == "demo":
        model = load_model(DEMO_MODEL_DIR, dtype=dtype, device=args.device)
    else:
        model = random_1b(tokenizer, dtype, args.device)
    parameters = sum(p.numel() for p in model.parameters())
    docs = sanity_docs(args.prompts)
    prompts = [tokenizer.encode(doc["prompt"]) for doc in docs]
    answers = [doc["answer"] for doc in docs]
    machine = machine_line()
    print(f"{args.model} model ({parameters / 1e6:.1f}M parameters, {args.dtype}, {args.device}), "
          f"{len(prompts)} sanity prompts; {machine}")

    results = {}
    for config in args.configs:
        gen_length, block_length = map(int, config.split("/"))
        print(f"\ngen_length {gen_length}, block {block_length}")
        rows = {name: run_mode(model, prompts, answers, tokenizer, gen_length, block_length, s)
                for name, s in MODES.items()}
        print_table(rows)
        results[config] = rows
    write_results(args.output, machine, {**vars(args), "parameters": parameters}, configs=results)


if __name__ == "__main__":
    main()
