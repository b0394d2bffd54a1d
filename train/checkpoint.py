"""Checkpoint directories: written atomically, found again after a crash.

Layout of ``output_dir``::

    latest                     name of the newest complete checkpoint
    log.jsonl                  one line per logged step
    checkpoint-0000200/        a save_pretrained directory (illada_eval.load_model reads it)
        config.json  model.safetensors  tokenizer.json  tokenizer_config.json
        train_config.yaml      the full training configuration
        training_state.pt      optimizer, scheduler, step, data position, RNG states

A checkpoint is written into ``.tmp-checkpoint-*`` and renamed into place once every file is on
disk; ``latest`` is replaced the same way afterwards. A crash at any moment therefore leaves
``latest`` naming a complete checkpoint, and the next run clears the half-written temp folder.
"""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "training_state.pt"
CONFIG_FILE = "train_config.yaml"
LATEST = "latest"
TEMP_PREFIX = ".tmp-"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step:07d}"


def _fsync_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_text_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}")
    with temp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    _fsync_dir(path.parent)


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoint folders holding a training state, oldest first."""
    found = []
    for path in output_dir.glob("checkpoint-*"):
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def find_latest(output_dir: Path) -> Path | None:
    """The checkpoint ``latest`` names, or the newest complete one if that file is gone."""
    pointer = output_dir / LATEST
    if pointer.is_file():
        named = output_dir / pointer.read_text(encoding="utf-8").strip()
        if (named / STATE_FILE).is_file():
            return named
    checkpoints = complete_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def clear_temporaries(output_dir: Path) -> None:
    """Remove what an interrupted save left behind (never a complete checkpoint)."""
    for path in output_dir.glob(f"{TEMP_PREFIX}*"):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def write_checkpoint(output_dir: Path, step: int, write_files: Callable[[Path], None], keep: int) -> Path:
    """Write a checkpoint with ``write_files(folder)`` into a temp folder, rename it into place,
    point ``latest`` at it, then delete all but the ``keep`` newest. Main process only."""
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / checkpoint_name(step)
    if final.exists():
        raise FileExistsError(f"{final} already exists; a checkpoint is never overwritten")
    temp = output_dir / f"{TEMP_PREFIX}{final.name}"
    if temp.exists():
        shutil.rmtree(temp)
    temp.mkdir()
    write_files(temp)
    _fsync_tree(temp)
    os.replace(temp, final)
    _fsync_dir(output_dir)
    write_text_atomic(output_dir / LATEST, final.name + "\n")
    for old in complete_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old)
    return final


def export_model(target: Path, write_files: Callable[[Path], None]) -> None:
    """Write model files into ``target`` file by file (each replaced atomically), leaving any
    other files there (a README, for instance) in place. The files get the permissions of any
    new file (0644 under the usual umask), whatever temporary-file mode a writer used."""
    target.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f"{TEMP_PREFIX}{target.name}-export"
    if temp.exists():
        shutil.rmtree(temp)
    temp.mkdir()
    write_files(temp)
    _fsync_tree(temp)
    mode = 0o666 & ~_umask()
    for file in sorted(temp.iterdir()):
        os.chmod(file, mode)
        os.replace(file, target / file.name)
    temp.rmdir()
    _fsync_dir(target)


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def save_state(folder: Path, state: dict[str, Any]) -> None:
    torch.save(state, folder / STATE_FILE)


def load_state(checkpoint: Path) -> dict[str, Any]:
    try:
        return torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file must say which one and what to do
        raise ValueError(
            f"cannot read the training state {checkpoint / STATE_FILE} ({error}); delete that "
            "checkpoint folder to resume from the one before"
        ) from error
