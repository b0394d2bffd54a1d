"""The trainer's FSDP path on 2 CPU processes (gloo): sharded training follows the one-process run,
checkpoints gather the full state, a resumed run repeats the uninterrupted one, exports load.

accelerate shards only on GPUs; ``fsdp_cpu_launch`` lifts that gate (see its docstring) so this
runs in CI on CPU with the trainer unchanged.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch

import illada_eval
from illada_eval.train import checkpoint as ckpt
from illada_eval.train.trainer import LOG_FILE

from fsdp_cpu_launch import LAYOUT_PREFIX
from train_helpers import (CROSS_PROCESS_ATOL, PACKED, assert_close_tensors, launch_two_processes, read_log, run,
                           sft_pairs)

STEPS, MIDDLE = 4, 2


def launch_fsdp(**overrides) -> dict:
    """Train with FSDP on 2 CPU processes; return the sharding layout the main process reported."""
    finished = launch_two_processes("fsdp_cpu_launch", fsdp=True, **overrides)
    lines = [line for line in finished.stdout.splitlines() if line.startswith(LAYOUT_PREFIX)]
    assert len(lines) == 1, finished.stdout[-3000:]
    return json.loads(lines[0].removeprefix(LAYOUT_PREFIX))


def curve(records: list[dict]) -> list[tuple]:
    """What a log line says about training (its throughput depends on the machine's load)."""
    return [(r["step"], r["loss"], r["lr"], r["grad_norm"], r["tokens"]) for r in records]


def weights(folder) -> dict[str, torch.Tensor]:
    model = illada_eval.load_model(folder)
    # the loaded model still shares one tensor between input embeddings and output head
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    return model.state_dict()


def test_fsdp_on_two_cpu_processes_follows_one_process_and_resumes_exactly(tmp_path):
    pairs = sft_pairs(tmp_path / "pairs.jsonl")
    settings = dict(data_files=str(pairs), batch_size=8, micro_batch_size=2, max_steps=STEPS,
                    save_every=MIDDLE, **PACKED)
    single = run(output_dir=str(tmp_path / "one"), **settings)
    whole = tmp_path / "fsdp"
    layout = launch_fsdp(output_dir=str(whole), export_dir=str(tmp_path / "export"), **settings)

    # (1) really FSDP: every parameter a DTensor split in dim 0 over both processes
    assert layout["distributed_type"] == "FSDP" and layout["world_size"] == 2
    assert layout["unsharded"] == [] and layout["parameters"] > 0
    assert layout["local_numel"] < layout["full_numel"] <= 2 * layout["local_numel"]

    # (2) the same samples and masks as one process: only the order of floating-point sums differs
    sharded = read_log(whole)
    assert [r["step"] for r in sharded] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in sharded] == pytest.approx([r["loss"] for r in single], rel=1e-5)
    assert [r["tokens"] for r in sharded] == [r["tokens"] for r in single]

    # checkpoints hold the gathered, unsharded state: full weights and full optimizer moments
    final = ckpt.checkpoint_name(STEPS)
    one, two = weights(tmp_path / "one" / final), weights(whole / final)
    assert_close_tensors(two, one, atol=CROSS_PROCESS_ATOL, what="FSDP vs one process")
    assert all(torch.equal(two[name], value) for name, value in weights(tmp_path / "export").items())
    state_one, state_two = ckpt.load_state(tmp_path / "one" / final), ckpt.load_state(whole / final)
    assert state_two["world_size"] == 2 and len(state_two["rng"]) == 2
    moments_one, moments_two = state_one["optimizer"]["state"], state_two["optimizer"]["state"]
    # first moments are running means of the gradients: rounding order moves them no more than it
    # moves the gradients themselves
    assert_close_tensors({name: moment["exp_avg"] for name, moment in moments_two.items()},
                         {name: moment["exp_avg"] for name, moment in moments_one.items()},
                         atol=1e-6, what="FSDP vs one process, AdamW exp_avg")

    # (3) a run stopped after the middle checkpoint, resumed, repeats the uninterrupted run
    stopped = tmp_path / "stopped"
    middle = ckpt.checkpoint_name(MIDDLE)
    shutil.copytree(whole / middle, stopped / middle)
    # the whole log, each line marked: the resume must keep the lines up to the checkpoint and
    # write the later ones again
    marked = [{**record, "tokens_per_s": -1.0} for record in sharded]
    (stopped / LOG_FILE).write_text("".join(json.dumps(record) + "\n" for record in marked))
    launch_fsdp(output_dir=str(stopped), resume=True, **settings)
    repeated = read_log(stopped)
    assert [r["tokens_per_s"] < 0 for r in repeated] == [r["step"] <= MIDDLE for r in repeated]
    assert curve(repeated) == curve(sharded)
    resumed = weights(stopped / final)
    assert all(torch.equal(two[name], resumed[name]) for name in two)
