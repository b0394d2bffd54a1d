"""Per-call cost of block decoding: the exact path and each cache mode, with every position run
projected (as before logits-only projection) or only the block's; FLOPs counted, time measured.

A randomly initialised network with LLaDA-8B's vocabulary (126,464 tokens) and head count (32)
but few layers decodes one 32-position block of a 512-token canvas (random prompt tokens, the
block, masked positions after it). Three kinds of call:

- exact: the whole canvas (every step of an uncached block; also a cached block's first step,
  which fills the cache);
- prefix: a later step under the prefix cache: the block and everything after it;
- dual: a later step under the dual cache: the block alone.

"full" projects every position the call runs and selects the block afterwards (the network
before logits-only projection); "block" projects the whole block; "masked" the block's
positions still masked at a later step (what the sampler reads). All must propose identical
tokens (the greedy argmax) where they are read. A block decoded in ``--steps-per-block`` steps
(revealing it evenly) costs that many exact calls uncached, or one exact call plus the rest as
later calls cached: the block-step times are those totals divided by the steps.

    OMP_NUM_THREADS=1 python benchmarks/step_cost.py [--hidden 1024] [--layers 2]
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from illada_eval.model import ILLaDAForMaskedLM, call_logits
from illada_eval.model._logits import select_block
from illada_eval.model.kv_cache import KV_CACHE_MODES, BlockKVCache
from illada_eval.settings import DEFAULT_BATCH_SIZE

from _common import machine_line, parse_checking_load, random_network, timed, write_results

LLADA_8B_VOCAB, LLADA_8B_HEADS = 126464, 32


class FullProjection(torch.nn.Module):
    """The network as it ran before logits-only projection: it does not take ``logits_at``, so
    every position it runs is projected and the caller selects the block."""

    def __init__(self, network: ILLaDAForMaskedLM):
        super().__init__()
        self.network = network

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return self.network(input_ids, attention_mask=attention_mask, **kwargs)


@dataclass
class Shape:
    """The network and canvas a measurement runs."""

    vocab: int = LLADA_8B_VOCAB
    heads: int = LLADA_8B_HEADS
    hidden: int = 1024
    intermediate: int = 2816
    layers: int = 2
    canvas: int = 512
    block_start: int = 256
    block: int = 32
    # rows per call as an evaluation runs them by default; at batch 1 a call that projects a few
    # positions is bound by reading the head's weights, not by arithmetic
    batch: int = DEFAULT_BATCH_SIZE

    def network(self, dtype: torch.dtype, device: str, mask_id: int | None = None,
                eos_id: int | None = None) -> ILLaDAForMaskedLM:
        return random_network(
            vocab=self.vocab, hidden=self.hidden, intermediate=self.intermediate, layers=self.layers,
            heads=self.heads, mask_id=self.vocab - 1 if mask_id is None else mask_id, eos_id=eos_id,
            dtype=dtype, device=device,
        )

    def call_flops(self, queries: int, keys: int, projected: int) -> float:
        """FLOPs (2 per multiply-add) of one call running ``queries`` positions that attend to
        ``keys`` and projecting ``projected`` of them (norms and softmax left out)."""
        return self.weight_flops(queries, projected) + self.attention_flops(queries, keys)

    def weight_flops(self, queries: int, projected: int) -> float:
        """The matrix products with weights: q, k, v, o, gate, up, down per layer; the lm head."""
        h = self.hidden
        per_position = 2 * (4 * h * h + 3 * h * self.intermediate)
        return self.batch * (self.layers * queries * per_position + 2 * projected * h * self.vocab)

    def attention_flops(self, queries: int, keys: int) -> float:
        """Scores and weighted values, all heads and layers."""
        return self.batch * self.layers * 2 * 2 * queries * keys * self.hidden


def canvas(shape: Shape, mask_id: int, device: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, mask_id, (shape.batch, shape.canvas), generator=generator)
    ids[:, shape.block_start:] = mask_id
    return ids.to(device)


def read_counts(block: int, steps: int) -> list[int]:
    """Masked positions of the block at each of ``steps`` steps revealing it evenly."""
    return [block - k * block // steps for k in range(steps)]


def measure(network: ILLaDAForMaskedLM, shape: Shape, steps: int, repeats: int, device: str) -> dict:
    """Time, FLOPs and proposed tokens of each kind of call: projecting every position run
    ("full"), the whole block ("block"), or the block's still-masked positions at each later
    step of a block decoded in ``steps`` steps ("masked", keyed by how many)."""
    ids = canvas(shape, network.config.mask_token_id, device)
    start, block, width = shape.block_start, shape.block, shape.canvas
    queries = {"exact": width, "prefix": width - start, "dual": block}
    models = {"full": FullProjection(network), "block": network}

    def call(kind: str, projection: str, read: torch.Tensor) -> tuple[float, torch.Tensor]:
        model = models[projection]
        if kind == "exact":
            run_call = lambda: call_logits(model, ids, None, select_block(ids, start, read))
        else:
            cache = BlockKVCache(kind)
            cache.block_logits(model, ids, None, start, read)  # the block's first step fills it
            run_call = lambda: cache.block_logits(model, ids, None, start, read)
        logits, wall = timed(run_call, repeats)
        return wall, logits.argmax(-1)

    whole = torch.ones(shape.batch, block, dtype=torch.bool, device=ids.device)
    results = {}
    for kind, run_positions in queries.items():
        full_wall, full_tokens = call(kind, "full", whole)
        block_wall, block_tokens = call(kind, "block", whole)
        identical = torch.equal(full_tokens, block_tokens)
        masked = {}
        for count in read_counts(block, steps)[1:]:
            read = whole.clone()
            read[:, count:] = False  # the block's last positions were revealed
            wall, tokens = call(kind, "block", read)
            identical &= torch.equal(tokens, full_tokens.view(shape.batch, block)[read])
            masked[count] = {"wall_s": wall, "flops": shape.call_flops(run_positions, width, count)}
        results[kind] = {
            "full": {"wall_s": full_wall,
                     "flops": shape.call_flops(run_positions, width, run_positions)},
            "block": {"wall_s": block_wall, "flops": shape.call_flops(run_positions, width, block)},
            "masked": masked,
            "identical_tokens": bool(identical),
        }
    return results


def block_steps(calls: dict, block: int, steps: int) -> dict:
    """Time and FLOPs per step of a block decoded in ``steps`` steps, uncached (every step
    exact) and under each cache (an exact step fills it, later steps reuse it), for each
    projection."""
    def cost(kind: str, projection: str, step: int, measure: str) -> float:
        if projection == "masked" and step > 0:
            return calls[kind]["masked"][read_counts(block, steps)[step]][measure]
        return calls[kind]["block" if projection == "masked" else projection][measure]

    out = {}
    for projection in ("full", "block", "masked"):
        out[projection] = {}
        for measure in ("wall_s", "flops"):
            per_step = {"exact": sum(cost("exact", projection, k, measure) for k in range(steps)) / steps}
            for mode in KV_CACHE_MODES:
                later = sum(cost(mode, projection, k, measure) for k in range(1, steps))
                per_step[mode] = (cost("exact", projection, 0, measure) + later) / steps
            out[projection][measure] = per_step
    return out


def report(calls: dict, steps_table: dict, steps: int) -> None:
    print(f"{'call':<8}{'projects':>12}{'GFLOP':>10}{'ms':>10}{'FLOPs ÷':>9}{'time ÷':>8}")
    for kind, row in calls.items():
        variants = [("all run", row["full"]), ("block", row["block"])]
        variants += [(f"{count} masked", r) for count, r in row["masked"].items()]
        for name, r in variants:
            print(f"{kind:<8}{name:>12}{r['flops'] / 1e9:>10.2f}{1e3 * r['wall_s']:>10.2f}"
                  f"{row['full']['flops'] / r['flops']:>9.2f}{row['full']['wall_s'] / r['wall_s']:>8.2f}")
    same = all(row["identical_tokens"] for row in calls.values())
    print(f"identical proposed tokens in every call: {'yes' if same else 'NO'}")
    print(f"\nper step of a block decoded in {steps} steps (the first fills the cache); before = "
          "every run position projected; ratios: time (FLOPs)")
    before = steps_table["full"]
    for mode in ("exact", *KV_CACHE_MODES):
        line = f"{mode:<8} before {1e3 * before['wall_s'][mode]:>9.2f} ms"
        for projection, name in (("block", "block"), ("masked", "still-masked")):
            after = steps_table[projection]
            line += (f"  {name} {1e3 * after['wall_s'][mode]:>9.2f} ms "
                     f"÷ {before['wall_s'][mode] / after['wall_s'][mode]:.2f} "
                     f"({before['flops'][mode] / after['flops'][mode]:.2f})")
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = Shape()
    for field in ("hidden", "intermediate", "layers", "canvas", "block_start", "block", "batch"):
        parser.add_argument(f"--{field.replace('_', '-')}", type=int, default=getattr(defaults, field))
    parser.add_argument("--steps-per-block", type=int, default=4,
                        help="steps a block takes (threshold decoding takes few)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--output", default="results/benchmarks/step_cost.json")
    args, load = parse_checking_load(parser)
    shape = Shape(**{f: getattr(args, f) for f in ("hidden", "intermediate", "layers", "canvas",
                                                    "block_start", "block", "batch")})
    results = run(shape, args.steps_per_block, args.repeats, args.device, getattr(torch, args.dtype))
    write_results(args.output, machine_line(), vars(args), load, **results)


@torch.inference_mode()
def run(shape: Shape, steps: int, repeats: int, device: str, dtype: torch.dtype) -> dict:
    network = shape.network(dtype, device)
    parameters = sum(p.numel() for p in network.parameters())
    print(f"random network: {parameters / 1e6:.0f}M parameters, vocab {shape.vocab}, {shape.heads} "
          f"heads, {shape.layers} layers of {shape.hidden}; canvas {shape.canvas}, block "
          f"{shape.block} at {shape.block_start}, batch {shape.batch}; {machine_line()}")
    calls = measure(network, shape, steps, repeats, device)
    table = block_steps(calls, shape.block, steps)
    report(calls, table, steps)
    return {"parameters": parameters, "calls": calls, "block_steps": table}


if __name__ == "__main__":
    main()
