"""The training loop, distributed through accelerate (one process, DDP or FSDP full shard).

Step ``s`` trains on global samples ``[s * batch_size, (s + 1) * batch_size)``, cut into
micro-batches of ``micro_batch_size``; process ``r`` takes micro-batches ``r, r + W, r + 2W, ...``
and accumulates their gradients. Each row's masks are drawn from a seed of ``(seed, step, its
global sample)``, so the loss curve depends neither on the number of processes nor on
``micro_batch_size`` (gradient accumulation).
"""
from __future__ import annotations

import contextlib
import json
import math
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator, FullyShardedDataParallelPlugin
from accelerate.utils import DistributedType, gather_object
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from tqdm.auto import tqdm

from ..model import ILLaDAConfig, ILLaDAForMaskedLM, load_model, pretrain_loss, sft_loss, variable_length_sft_loss
from . import checkpoint as ckpt
from .config import DATA_STREAM_FIELDS, TrainConfig, check_output_paths, config_to_dict
from .data import MicroBatch, PackedRows, load_rows, masking_generators, micro_batch, read_records
from .schedule import build_scheduler
from .tokenizer import (
    MASK_TOKEN_ID,
    build_char_tokenizer,
    check_special_tokens,
    load_tokenizer,
    train_bpe_tokenizer,
)

LOG_FILE = "log.jsonl"
FULL_STATE = StateDictOptions(full_state_dict=True, cpu_offload=True)


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    checkpoint: Path
    is_main_process: bool


# --------------------------------------------------------------------------- set-up


def build_accelerator(config: TrainConfig) -> Accelerator:
    mixed = config.mixed_precision
    if mixed == "auto":
        cuda = torch.cuda.is_available() and not config.cpu
        mixed = "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"
    plugin = None
    if config.fsdp:
        plugin = FullyShardedDataParallelPlugin(
            fsdp_version=2,
            reshard_after_forward=True,  # full shard
            auto_wrap_policy="transformer_based_wrap",
            transformer_cls_names_to_wrap=["DecoderLayer"],
            state_dict_type="FULL_STATE_DICT",
        )
    accelerator = Accelerator(cpu=config.cpu, mixed_precision=mixed, fsdp_plugin=plugin)
    if config.fsdp and accelerator.num_processes > 1 and accelerator.distributed_type != DistributedType.FSDP:
        warnings.warn(
            f"fsdp is on but accelerate runs {accelerator.distributed_type.value} here (it shards only "
            "on GPUs and other accelerators): every process holds the whole model",
            stacklevel=2,
        )
    return accelerator


def build_tokenizer(config: TrainConfig, resume_from: Path | None, accelerator: Accelerator):
    if resume_from is not None:
        return load_tokenizer(resume_from)
    if config.tokenizer == "char":
        return build_char_tokenizer()
    if config.tokenizer == "bpe":
        # trained once by the main process; the others load its save, so all share one vocabulary
        folder = Path(config.output_dir) / "tokenizer"
        with accelerator.main_process_first():
            if accelerator.is_main_process:
                texts = (
                    " ".join(str(v) for v in record.values() if isinstance(v, str))
                    for record in read_records(config)
                )
                train_bpe_tokenizer(texts, config.tokenizer_vocab_size).save_pretrained(folder)
            tokenizer = load_tokenizer(folder)
        return tokenizer
    if config.tokenizer is None and config.init_from is None:
        raise ValueError(
            "a fresh model needs a tokenizer: set tokenizer (a directory or Hub id, 'char' or 'bpe') "
            "or init_from (a checkpoint whose tokenizer is used)"
        )
    return load_tokenizer(config.tokenizer or config.init_from)


def fresh_model_config(config: TrainConfig, tokenizer) -> ILLaDAConfig:
    """A new network's config: the recipe's ``model`` keys; vocabulary and special ids from the
    tokenizer unless the recipe sets them."""
    settings: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "mask_token_id": tokenizer.mask_token_id if tokenizer.mask_token_id is not None else MASK_TOKEN_ID,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
    }
    settings.update(config.model)
    return ILLaDAConfig(**settings)


def build_model(config: TrainConfig, tokenizer, resume_from: Path | None) -> ILLaDAForMaskedLM:
    source = resume_from or config.init_from
    if source is not None:
        model = load_model(source, dtype=torch.float32)
    else:
        torch.manual_seed(config.seed)  # every process builds the same initial weights
        model = ILLaDAForMaskedLM(fresh_model_config(config, tokenizer))
    limit = model.config.max_position_embeddings
    if config.seq_len > limit:
        raise ValueError(
            f"seq_len={config.seq_len} is above the model's max_position_embeddings={limit}; "
            f"lower seq_len (or, for a fresh model, raise model.max_position_embeddings)"
        )
    check_special_tokens(tokenizer, model.config.mask_token_id, model.config.vocab_size)
    if config.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model.train()


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (norm weights are not decayed)."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=config.lr, betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_eps
    )


def total_steps(config: TrainConfig, rows) -> int:
    if config.max_steps is not None:
        return config.max_steps
    assert isinstance(rows, PackedRows)  # validate() refuses epochs with streaming data
    return max(1, math.ceil(config.epochs * len(rows) / config.batch_size))


def compute_loss(config: TrainConfig, model, batch: MicroBatch, mask_id: int, generators: list[torch.Generator]):
    """The objective's loss on ``batch``; ``generators`` draw the masks, one per row."""
    common = dict(mask_id=mask_id, eps=config.mask_eps, generator=generators, attention_mask=batch.attention_mask)
    if config.objective == "sft-llada":
        return sft_loss(model, batch.input_ids, batch.prompt_lengths, **common)
    objective = pretrain_loss if config.objective == "pretrain" else variable_length_sft_loss
    return objective(model, batch.input_ids, **common)


# --------------------------------------------------------------------------- resume


def resume_point(config: TrainConfig) -> Path | None:
    """The checkpoint to continue from, or None for a fresh start; refuses to overwrite a run."""
    output_dir = Path(config.output_dir)
    latest = ckpt.find_latest(output_dir) if output_dir.is_dir() else None
    if config.resume:
        if latest is None:
            raise FileNotFoundError(
                f"--resume: no checkpoint in {output_dir}; run without --resume to start training"
            )
        saved = yaml.safe_load((latest / ckpt.CONFIG_FILE).read_text())
        changed = [k for k in DATA_STREAM_FIELDS if saved.get(k) != getattr(config, k)]
        if changed:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {getattr(config, k)!r}" for k in changed)
            raise ValueError(
                f"--resume from {latest}: these settings differ from the saved run ({details}); "
                "they decide which data each step sees, so keep them as they were"
            )
        return latest
    if latest is not None:
        raise FileExistsError(
            f"{output_dir} already holds checkpoints (latest: {latest.name}); pass --resume to "
            "continue that run or choose another output_dir"
        )
    return None


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def restore_log(log_path: Path, step: int) -> None:
    """Keep the log lines of steps up to ``step``: a resumed run writes the later ones again."""
    if not log_path.is_file():
        return
    kept = [line for line in log_path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    ckpt.write_text_atomic(log_path, "".join(line + "\n" for line in kept))


# --------------------------------------------------------------------------- the loop


class Trainer:
    def __init__(self, config: TrainConfig):
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.accelerator = build_accelerator(config)
        self.micro_per_process = self._micro_batches_per_process()
        if self.accelerator.is_main_process and self.output_dir.is_dir():
            ckpt.clear_temporaries(self.output_dir)
        self.resume_from = resume_point(config)
        self.tokenizer = build_tokenizer(config, self.resume_from, self.accelerator)
        model = build_model(config, self.tokenizer, self.resume_from)
        # saved with each checkpoint: users of the tokenizer learn the longest input the model takes
        self.tokenizer.model_max_length = model.config.max_position_embeddings
        self.mask_id = model.config.mask_token_id
        self.pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else self.tokenizer.eos_token_id
        self.rows = load_rows(config, self.tokenizer)
        self.max_steps = total_steps(config, self.rows)
        optimizer = build_optimizer(model, config)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.scheduler = build_scheduler(
            self.optimizer, lr=config.lr, min_lr=config.min_lr, warmup_steps=config.warmup_steps,
            max_steps=self.max_steps, decay_fraction=config.decay_fraction, decay=config.decay,
        )
        self.start_step = self._restore() if self.resume_from else 0

    def _micro_batches_per_process(self) -> int:
        micro_batches = self.config.batch_size // self.config.micro_batch_size
        world = self.accelerator.num_processes
        if micro_batches % world:
            raise ValueError(
                f"batch_size / micro_batch_size = {micro_batches} micro-batches per step cannot be "
                f"shared evenly by {world} processes; make it a multiple of {world}"
            )
        return micro_batches // world

    def _restore(self) -> int:
        state = ckpt.load_state(self.resume_from)
        set_optimizer_state_dict(
            self.model, self.optimizer, state["optimizer"], options=StateDictOptions(full_state_dict=True)
        )
        self.scheduler.load_state_dict(state["scheduler"])
        ranks = state["rng"]
        set_rng_state(ranks[self.accelerator.process_index % len(ranks)])
        if self.accelerator.is_main_process:
            restore_log(self.output_dir / LOG_FILE, state["step"])
        return state["step"]

    # one optimizer step over the global batch of `step`
    def _step(self, step: int) -> tuple[torch.Tensor, int, torch.Tensor | None]:
        config, accelerator = self.config, self.accelerator
        world, rank = accelerator.num_processes, accelerator.process_index
        size = config.micro_batch_size
        loss_sum = torch.zeros((), device=accelerator.device)
        tokens = 0
        for index in range(self.micro_per_process):
            first = step * config.batch_size + (index * world + rank) * size
            samples = list(range(first, first + size))
            ids, prompt_lengths = self.rows.get(samples)
            batch = micro_batch(ids, prompt_lengths, samples, step, config, self.pad_id).to(accelerator.device)
            generators = masking_generators(batch, step, config)
            last = index == self.micro_per_process - 1
            sync = contextlib.nullcontext() if last else accelerator.no_sync(self.model)
            with sync:
                loss, _ = compute_loss(config, self.model, batch, self.mask_id, generators)
                accelerator.backward(loss / self.micro_per_process)
            loss_sum += loss.detach() / self.micro_per_process
            tokens += batch.num_tokens
        grad_norm = None
        if config.grad_clip > 0:
            grad_norm = accelerator.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum, tokens, grad_norm

    def train(self) -> TrainResult:
        config, accelerator = self.config, self.accelerator
        main = accelerator.is_main_process
        log_path = self.output_dir / LOG_FILE
        if main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            if self.start_step == 0:
                log_path.write_text("")
        bar = tqdm(total=self.max_steps, initial=self.start_step, disable=not (main and config.progress),
                   desc="train", dynamic_ncols=True)
        loss_value, checkpoint = float("nan"), self.resume_from
        # the log reports means over the steps since the last line: one step's loss is noisy
        window_loss, window_steps, window_tokens = 0.0, 0, 0
        window_start = time.perf_counter()
        for step in range(self.start_step, self.max_steps):
            lr = self.scheduler.get_last_lr()[0]
            loss, tokens, grad_norm = self._step(step)
            done = step + 1
            window_loss, window_steps, window_tokens = window_loss + loss, window_steps + 1, window_tokens + tokens
            if done % config.log_every == 0 or done == self.max_steps:
                loss_value = accelerator.reduce(window_loss / window_steps, reduction="mean").item()
                seen = accelerator.reduce(torch.tensor(window_tokens, device=accelerator.device), "sum").item()
                elapsed = time.perf_counter() - window_start
                record = {
                    "step": done, "loss": loss_value, "lr": lr,
                    "grad_norm": None if grad_norm is None else float(grad_norm),
                    "tokens": int(seen), "tokens_per_s": seen / max(elapsed, 1e-9),
                    "samples_seen": done * config.batch_size,
                }
                if main:
                    with log_path.open("a") as handle:
                        handle.write(json.dumps(record) + "\n")
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", tok_s=f"{record['tokens_per_s']:.0f}")
                window_loss, window_steps, window_tokens = 0.0, 0, 0
                window_start = time.perf_counter()
            bar.update(1)
            if done % config.save_every == 0 or done == self.max_steps:
                checkpoint = self.save(done)
        bar.close()
        if config.export_dir and self.max_steps > self.start_step:
            self.export(Path(config.export_dir))
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return TrainResult(self.max_steps, loss_value, checkpoint, accelerator.is_main_process)

    # --------------------------------------------------------------------------- saving

    def _write_model(self, folder: Path, model_state: dict[str, torch.Tensor]) -> None:
        unwrapped = self.accelerator.unwrap_model(self.model)
        unwrapped.save_pretrained(folder, state_dict=model_state, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)

    def save(self, step: int) -> Path:
        """A checkpoint after ``step`` optimizer steps; collective, every process must call it."""
        model_state = get_model_state_dict(self.model, options=FULL_STATE)
        optimizer_state = get_optimizer_state_dict(self.model, self.optimizer, options=FULL_STATE)
        rng = gather_object([rng_state()])  # one entry per process, in rank order
        folder = self.output_dir / ckpt.checkpoint_name(step)
        if self.accelerator.is_main_process:
            state = {
                "step": step, "samples_seen": step * self.config.batch_size,
                "optimizer": optimizer_state, "scheduler": self.scheduler.state_dict(), "rng": rng,
                "world_size": self.accelerator.num_processes,
            }

            def write(temp: Path) -> None:
                self._write_model(temp, model_state)
                (temp / ckpt.CONFIG_FILE).write_text(yaml.safe_dump(config_to_dict(self.config), sort_keys=False))
                ckpt.save_state(temp, state)

            folder = ckpt.write_checkpoint(self.output_dir, step, write, self.config.keep_checkpoints)
        self.accelerator.wait_for_everyone()
        return folder

    def export(self, target: Path) -> None:
        model_state = get_model_state_dict(self.model, options=FULL_STATE)
        if self.accelerator.is_main_process:
            ckpt.export_model(target, lambda temp: self._write_model(temp, model_state))
        self.accelerator.wait_for_everyone()


def train(config: TrainConfig) -> TrainResult:
    check_output_paths(config)  # before any work: the export must not replace what a user owns
    return Trainer(config).train()
