"""The trainer in other processes: a 2-process (gloo) run, and a SIGKILL while saving."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

import illada_eval
from illada_eval.train import checkpoint as ckpt

from train_helpers import (CROSS_PROCESS_ATOL, PACKED, assert_close_tensors, child_env, launch_two_processes, read_log,
                           run, sft_pairs)


def test_two_processes_follow_the_single_process_loss_curve(tmp_path):
    pairs = sft_pairs(tmp_path / "pairs.jsonl")
    settings = dict(data_files=str(pairs), batch_size=8, micro_batch_size=2, max_steps=5, save_every=5, **PACKED)
    single = run(output_dir=str(tmp_path / "one"), **settings)
    launch_two_processes("illada_eval.train.cli", output_dir=str(tmp_path / "two"), **settings)
    double = read_log(tmp_path / "two")
    assert [r["step"] for r in double] == [1, 2, 3, 4, 5]
    # same samples, same masks: only the order of floating-point sums differs
    assert [r["loss"] for r in double] == pytest.approx([r["loss"] for r in single], rel=1e-5)
    assert [r["tokens"] for r in double] == [r["tokens"] for r in single]
    state = ckpt.load_state(tmp_path / "two" / "checkpoint-0000005")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    one = illada_eval.load_model(tmp_path / "one" / "checkpoint-0000005").state_dict()
    two = illada_eval.load_model(tmp_path / "two" / "checkpoint-0000005").state_dict()
    assert_close_tensors(two, one, atol=CROSS_PROCESS_ATOL, what="2 processes vs 1")


KILL_WHILE_SAVING = """
import os, signal, sys
from illada_eval.train import checkpoint
from train_helpers import run

write_state = checkpoint.save_state

def killed_at_step_four(folder, state):
    if state["step"] == 4:  # model files already in the temp folder, training state not yet
        os.kill(os.getpid(), signal.SIGKILL)
    write_state(folder, state)

checkpoint.save_state = killed_at_step_four
run(data_files=[sys.argv[1]], output_dir=sys.argv[2], objective="sft-illada",
    two_segment_prob=0.5, random_length_prob=0.3)
"""


def test_sigkill_while_saving_keeps_the_previous_checkpoint_and_resumes_exactly(tmp_path):
    pairs = sft_pairs(tmp_path / "pairs.jsonl")
    expected = run(data_files=[str(pairs)], output_dir=str(tmp_path / "whole"), **PACKED)
    output = tmp_path / "killed"
    script = tmp_path / "kill_while_saving.py"
    script.write_text(textwrap.dedent(KILL_WHILE_SAVING))
    killed = subprocess.run([sys.executable, str(script), str(pairs), str(output)], env=child_env(),
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    half = output / ".tmp-checkpoint-0000004"
    assert (half / "model.safetensors").is_file() and not (half / ckpt.STATE_FILE).exists()
    assert ckpt.find_latest(output) == output / "checkpoint-0000002"
    illada_eval.load_model(ckpt.find_latest(output))  # the previous checkpoint is usable

    resumed = run(data_files=[str(pairs)], output_dir=str(output), resume=True, **PACKED)
    assert not half.exists()
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in expected]
