"""The trainer end to end on tiny runs: learning, recipes, checkpoints, resume, errors, SFT masking."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from accelerate.state import AcceleratorState
from safetensors import safe_open
from transformers import AutoTokenizer

import illada_eval
from illada_eval.train import checkpoint as ckpt
from illada_eval.train import trainer as trainer_module
from illada_eval.train.data import masking_generators, micro_batch
from illada_eval.train.trainer import Trainer, compute_loss, train

from train_helpers import read_log, run, sft_pairs, tiny_config

PACKED_WITH_CUTS = dict(objective="sft-illada", two_segment_prob=0.5, random_length_prob=0.3)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return sft_pairs(tmp_path_factory.mktemp("data") / "pairs.jsonl")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, pairs) -> tuple[Path, list[dict]]:
    """Six steps of a packed run with both random-length cuts, checkpoints every two steps."""
    output = tmp_path_factory.mktemp("uninterrupted")
    return output, run(data_files=[str(pairs)], output_dir=str(output), **PACKED_WITH_CUTS)


def test_loss_decreases_on_a_tiny_corpus(tmp_path, pairs):
    log = run(data_files=[str(pairs)], output_dir=str(tmp_path), objective="sft-llada", max_steps=40,
              save_every=40, log_every=1, decay_fraction=0.0)
    losses = [record["loss"] for record in log]
    assert len(losses) == 40
    assert sum(losses[-8:]) / 8 < 0.6 * sum(losses[:8]) / 8
    assert all(record["tokens_per_s"] > 0 and record["lr"] > 0 for record in log)


@pytest.fixture
def float64_default():
    """Build fresh networks in float64 for equivalence checks: float32 rounding of sums taken in
    another order (~1e-7 relative, amplified where Adam divides a near-zero gradient by its own
    scale) then sits ~9 orders of magnitude lower, far below the tolerances below."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("cuts", [PACKED_WITH_CUTS, dict(objective="sft-llada", seq_len=48, random_pad_prob=1.0)],
                         ids=["packed-cuts", "sft-llada-random-padding"])
def test_loss_curve_does_not_depend_on_the_micro_batch_split(tmp_path, pairs, cuts, float64_default):
    """A global batch of 4 as one micro-batch of 4, or accumulated from 2 x 2 and 4 x 1: the same
    rows, cuts, padding and masks, so only the order of floating-point sums differs."""
    runs = {
        size: (tmp_path / str(size), run(data_files=[str(pairs)], output_dir=str(tmp_path / str(size)),
                                         micro_batch_size=size, save_every=6, **cuts))
        for size in (4, 2, 1)
    }
    whole_dir, whole = runs[4]
    weights = illada_eval.load_model(whole_dir / "checkpoint-0000006").state_dict()
    assert {tensor.dtype for tensor in weights.values()} == {torch.float64}
    for size in (2, 1):
        output, log = runs[size]
        assert [r["tokens"] for r in log] == [r["tokens"] for r in whole]
        assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in whole], rel=1e-9)
        assert [r["grad_norm"] for r in log] == pytest.approx([r["grad_norm"] for r in whole], rel=1e-9)
        accumulated = illada_eval.load_model(output / "checkpoint-0000006").state_dict()
        for name in weights:
            torch.testing.assert_close(accumulated[name], weights[name], rtol=0, atol=1e-9,
                                       msg=lambda text: f"{name}, micro-batch {size} vs 4: {text}")


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one AcceleratorState per process and refuses a second mixed-precision
    setting in it; reset it around the test, as accelerate's own test cases do."""
    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


def test_bf16_autocast_on_cpu_trains_fp32_master_weights(tmp_path, pairs, fresh_accelerate_state):
    settings = dict(data_files=[str(pairs)], objective="sft-llada", max_steps=12, save_every=12, decay_fraction=0.0)
    fp32 = run(output_dir=str(tmp_path / "fp32"), mixed_precision="no", **settings)
    AcceleratorState._reset_state()
    trainer = Trainer(tiny_config(output_dir=str(tmp_path / "bf16"), mixed_precision="bf16", **settings))
    head_dtypes = set()
    head = trainer.accelerator.unwrap_model(trainer.model).lm_head
    head.register_forward_hook(lambda module, inputs, output: head_dtypes.add(output.dtype))
    trainer.train()
    bf16 = read_log(tmp_path / "bf16")
    assert head_dtypes == {torch.bfloat16}  # the forward ran under autocast
    losses = [r["loss"] for r in bf16]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-4:]) < 0.8 * sum(losses[:4])
    assert losses != [r["loss"] for r in fp32]  # bf16 matmuls round differently ...
    assert losses == pytest.approx([r["loss"] for r in fp32], rel=0.02)  # ... but follow the fp32 curve
    checkpoint = tmp_path / "bf16" / "checkpoint-0000012"
    with safe_open(checkpoint / "model.safetensors", "pt") as saved:
        assert {saved.get_tensor(name).dtype for name in saved.keys()} == {torch.float32}
    model = illada_eval.load_model(checkpoint)
    assert next(model.parameters()).dtype == torch.float32


def test_checkpoint_is_a_save_pretrained_directory(uninterrupted):
    output, log = uninterrupted
    latest = ckpt.find_latest(output)
    assert latest == output / "checkpoint-0000006" and (output / "latest").read_text().strip() == latest.name
    assert [p.name for p in ckpt.complete_checkpoints(output)] == [
        "checkpoint-0000002", "checkpoint-0000004", "checkpoint-0000006"]
    model = illada_eval.load_model(latest)
    tokenizer = AutoTokenizer.from_pretrained(latest)
    assert model.config.mask_token_id == tokenizer.mask_token_id == 5
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied
    state = ckpt.load_state(latest)
    assert state["step"] == 6 and state["samples_seen"] == 24 and len(state["rng"]) == 1
    assert yaml.safe_load((latest / ckpt.CONFIG_FILE).read_text())["objective"] == "sft-illada"
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]


def test_resume_after_a_crash_continues_exactly(tmp_path, pairs, uninterrupted, monkeypatch):
    _, expected = uninterrupted
    step_once = Trainer._step

    def crash_at_step_five(self, step):
        if step == 4:  # 0-based: steps 1..4 are done, checkpoint-4 is on disk
            raise RuntimeError("simulated crash")
        return step_once(self, step)

    monkeypatch.setattr(Trainer, "_step", crash_at_step_five)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(data_files=[str(pairs)], output_dir=str(tmp_path), **PACKED_WITH_CUTS)
    monkeypatch.setattr(Trainer, "_step", step_once)
    resumed = run(data_files=[str(pairs)], output_dir=str(tmp_path), resume=True, **PACKED_WITH_CUTS)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]  # the log holds each step once
    for got, want in zip(resumed, expected):
        assert (got["loss"], got["grad_norm"], got["lr"]) == (want["loss"], want["grad_norm"], want["lr"])


def test_interrupted_checkpoint_write_leaves_the_previous_one(tmp_path, pairs, uninterrupted):
    """What a kill during a save leaves behind: a half-written temp folder, `latest` unchanged."""
    output, expected = uninterrupted
    for name in ("checkpoint-0000002", "checkpoint-0000004", "latest"):
        source = output / name
        target = tmp_path / name
        if source.is_dir():
            target.mkdir()
            for file in source.iterdir():
                (target / file.name).write_bytes(file.read_bytes())
        else:
            target.write_text("checkpoint-0000004\n")
    half = tmp_path / ".tmp-checkpoint-0000006"
    half.mkdir()
    (half / "model.safetensors").write_bytes((output / "checkpoint-0000006" / "model.safetensors").read_bytes()[:100])
    (tmp_path / "log.jsonl").write_text((output / "log.jsonl").read_text())
    assert ckpt.find_latest(tmp_path) == tmp_path / "checkpoint-0000004"
    illada_eval.load_model(ckpt.find_latest(tmp_path))
    resumed = run(data_files=[str(pairs)], output_dir=str(tmp_path), resume=True, **PACKED_WITH_CUTS)
    assert not half.exists()
    assert [r["loss"] for r in resumed] == [r["loss"] for r in expected]


def test_resume_refuses_changed_data_settings_and_fresh_runs_refuse_to_overwrite(tmp_path, pairs, uninterrupted):
    output, _ = uninterrupted
    with pytest.raises(ValueError, match=r"seq_len: 24 -> 12"):
        Trainer(tiny_config(data_files=[str(pairs)], output_dir=str(output), resume=True, seq_len=12,
                            **PACKED_WITH_CUTS))
    with pytest.raises(FileExistsError, match="pass --resume"):
        Trainer(tiny_config(data_files=[str(pairs)], output_dir=str(output), **PACKED_WITH_CUTS))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(tiny_config(data_files=[str(pairs)], output_dir=str(tmp_path), resume=True))


@pytest.mark.parametrize("recipe", ["pretrain", "sft-llada", "sft-illada", "demo"])
def test_each_recipe_runs_a_few_steps(recipe, tmp_path, pairs, uninterrupted):
    base, _ = uninterrupted
    overrides = dict(output_dir=str(tmp_path / "run"), max_steps=2, save_every=2)
    if recipe == "pretrain":  # from scratch, streaming, with a BPE tokenizer trained on the data
        overrides.update(data_files=[str(pairs)], text_field="prompt", tokenizer="bpe", tokenizer_vocab_size=300)
    elif recipe == "demo":
        overrides.update(synthetic_examples=200, export_dir=str(tmp_path / "export"))
    else:  # SFT on top of a base checkpoint, with its tokenizer
        overrides.update(data_files=[str(pairs)], init_from=str(base / "checkpoint-0000006"),
                         tokenizer=None, model={}, chat_template=False, epochs=None)
    log = run(recipe, **overrides)
    assert [r["step"] for r in log] == [1, 2] and all(r["loss"] > 0 for r in log)
    saved = illada_eval.load_model(ckpt.find_latest(tmp_path / "run"))
    if recipe == "demo":
        exported = illada_eval.load_model(tmp_path / "export")
        assert not (tmp_path / "export" / ckpt.STATE_FILE).exists()
        assert torch.equal(exported.model.embed_tokens.weight, saved.model.embed_tokens.weight)
    if recipe.startswith("sft"):
        assert saved.config.hidden_size == illada_eval.load_model(base / "checkpoint-0000006").config.hidden_size


def test_epochs_set_the_number_of_steps(tmp_path, pairs):
    config = tiny_config(data_files=[str(pairs)], output_dir=str(tmp_path), objective="sft-llada",
                         max_steps=None, epochs=0.5)
    trainer = Trainer(config)
    assert len(trainer.rows) == 40 and trainer.max_steps == 5  # half an epoch, 4 rows per step


def test_clear_errors(tmp_path, pairs):
    out = str(tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="data file '.*missing.jsonl' does not exist"):
        train(tiny_config(data_files=[str(tmp_path / "missing.jsonl")], output_dir=out))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="no training rows from .*empty.jsonl"):
        train(tiny_config(data_files=[str(empty)], output_dir=out))
    with pytest.raises(ValueError, match="seq_len=128 is above the model's max_position_embeddings=64"):
        train(tiny_config(data_files=[str(pairs)], output_dir=out, seq_len=128))
    with pytest.raises(ValueError, match="a fresh model needs a tokenizer"):
        train(tiny_config(data_files=[str(pairs)], output_dir=out, tokenizer=None))
    with pytest.raises(ValueError, match="no training data"):
        train(tiny_config(output_dir=out))


def test_sft_masking_protects_the_prompt_only_in_sft_llada(tmp_path, pairs):
    """Through the trainer's own data path and loss wiring, on a whole epoch of rows."""
    masked_prompt = {}
    for objective in ("sft-llada", "sft-illada"):
        trainer = Trainer(tiny_config(data_files=[str(pairs)], output_dir=str(tmp_path / objective),
                                      objective=objective, micro_batch_size=4))
        samples = list(range(len(trainer.rows)))
        ids, prompt_lengths = trainer.rows.get(samples)
        batch = micro_batch(ids, prompt_lengths, samples, 0, trainer.config, trainer.pad_id)
        generators = masking_generators(batch, 0, trainer.config)
        _, info = compute_loss(trainer.config, trainer.model, batch, trainer.mask_id, generators)
        positions = torch.arange(ids.shape[1])
        if objective == "sft-llada":
            prompt = positions[None, :] < prompt_lengths[:, None]
            assert not info["masked"][prompt].any()
            assert info["masked"][~prompt].any()
            eos_padding = ids == trainer.tokenizer.eos_token_id
            assert info["masked"][eos_padding].any()  # the EOS padding is trained on
        else:
            rev = trainer.tokenizer.encode("rev", add_special_tokens=False)[0]
            masked_prompt[objective] = bool(info["masked"][ids == rev].any())  # prompt letters
            assert masked_prompt[objective]
