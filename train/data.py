"""Training data: records -> token segments -> fixed-length rows -> the rows of each step.

- Records come from local files (``.txt``: a document per non-empty line; ``.jsonl``; ``.json``:
  a list of records), a Hugging Face dataset, or the synthetic demo curriculum.
- Pre-training and iLLaDA SFT pack their segments (document + EOS, or prompt + response + EOS)
  back to back and cut the stream into ``seq_len`` rows. LLaDA SFT keeps one example per row,
  padded with EOS to ``seq_len`` (or, with ``random_pad_prob``, to a length drawn per step),
  and remembers where its prompt ends.
- Global sample ``g`` (``step * batch_size + i``) is a fixed row: epoch ``g // N`` visits the
  rows in a permutation drawn from ``(seed, epoch)``; streaming data is read in order through a
  seeded shuffle buffer, every process reading the whole stream and keeping its own rows. The
  random-length cuts and padding depend on ``(seed, step)`` and ``(seed, step, g)`` only, and
  each row's masks on ``(seed, step, g, segment)``, so any number
  of processes, and any split of a step into micro-batches, sees the same samples and masks.
"""
from __future__ import annotations

import json
import random
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from ..model.masking import derive_seed, seeded_generator
from . import synthetic
from .config import TrainConfig

# stream tags of derive_seed: each kind of draw has its own numbers
ORDER, RANDOM_LENGTH, TWO_SEGMENT, MASKING, RANDOM_PAD = 1, 2, 3, 4, 5
TOKENIZE_CHUNK = 512
LOCAL_SUFFIXES = (".txt", ".jsonl", ".json")


@dataclass
class Segment:
    """One document (all ``ids``) or one SFT example (prompt then response, EOS included)."""

    ids: list[int]
    prompt_length: int = 0


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # [n, L]
    attention_mask: torch.Tensor | None  # [n, L], None when no row is padded
    prompt_lengths: torch.Tensor | None  # [n], sft-llada only
    num_tokens: int  # real tokens, for tokens/s
    row_keys: list[tuple[int, int]]  # per row: (global sample, segment 0 or 1 of a split row)

    def to(self, device: torch.device) -> MicroBatch:
        def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(device)

        return MicroBatch(
            move(self.input_ids), move(self.attention_mask), move(self.prompt_lengths), self.num_tokens, self.row_keys
        )


# --------------------------------------------------------------------------- records


def check_data_files(paths: list[str]) -> list[Path]:
    files = [Path(p).expanduser() for p in paths]
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"data file '{file}' does not exist; fix the path in data_files")
        if file.suffix not in LOCAL_SUFFIXES:
            raise ValueError(f"data file '{file}': unsupported type {file.suffix!r}; use one of {LOCAL_SUFFIXES}")
    return files


def _read_local(file: Path, text_field: str) -> Iterator[dict[str, Any]]:
    try:
        yield from _parse_local(file, text_field)
    except UnicodeDecodeError as error:
        raise ValueError(f"data file {file} is not UTF-8 text ({error.reason} at byte {error.start}); "
                         "convert it, e.g. iconv -f latin1 -t utf-8") from None


def _parse_local(file: Path, text_field: str) -> Iterator[dict[str, Any]]:
    if file.suffix == ".json":
        try:
            records = json.loads(file.read_text(encoding="utf-8") or "[]")
        except json.JSONDecodeError as error:
            raise ValueError(f"{file} is not valid JSON ({error}); a .json data file holds a list of records") from error
        if not isinstance(records, list):
            raise ValueError(f"{file} must hold a JSON list of records (or use .jsonl, a record per line)")
        yield from records
        return
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if file.suffix == ".txt":
                yield {text_field: line.rstrip("\n")}
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{file}:{number} is not a JSON record ({error})") from error


def _read_hub(config: TrainConfig) -> Iterable[dict[str, Any]]:
    import datasets  # heavy; only Hub data needs it

    try:
        dataset = datasets.load_dataset(
            config.hf_dataset, config.hf_config, split=config.hf_split, streaming=config.streaming
        )
    except Exception as error:  # network, unknown id or split: one clear message for all
        raise FileNotFoundError(
            f"could not load the dataset '{config.hf_dataset}' (config {config.hf_config!r}, split "
            f"{config.hf_split!r}): {type(error).__name__}: {error}. Check the id, the split and "
            "your network, or use local data_files"
        ) from error
    return dataset


def _shuffled(records: Iterable[Any], buffer_size: int, seed: int) -> Iterator[Any]:
    """A seeded shuffle buffer: streaming data gets a fresh, reproducible order each epoch."""
    rng = random.Random(seed)
    buffer: list[Any] = []
    for record in records:
        if len(buffer) < buffer_size:
            buffer.append(record)
            continue
        index = rng.randrange(buffer_size)
        yield buffer[index]
        buffer[index] = record
    rng.shuffle(buffer)
    yield from buffer


def read_records(config: TrainConfig, epoch: int = 0) -> Iterator[dict[str, Any]]:
    """All records of the configured sources, in order (shuffled per epoch when streaming)."""
    sources: list[Iterable[dict[str, Any]]] = []
    if config.synthetic:
        examples = synthetic.training_examples(config.synthetic_examples, seed=config.seed)
        if config.objective == "pretrain":
            examples = [{config.text_field: e["prompt"] + e["response"]} for e in examples]
        else:
            examples = [{config.prompt_field: e["prompt"], config.response_field: e["response"]} for e in examples]
        sources.append(examples)
    sources.extend(_read_local(file, config.text_field) for file in check_data_files(config.data_files))
    if config.hf_dataset:
        sources.append(_read_hub(config))
    if not sources:
        raise ValueError("no training data: set data_files, hf_dataset or synthetic")
    records = (record for source in sources for record in source)
    if config.streaming:
        return _shuffled(records, config.shuffle_buffer, derive_seed(config.seed, ORDER, epoch))
    return records


# --------------------------------------------------------------------------- tokenising


def _field(record: dict[str, Any], name: str, what: str) -> Any:
    if not isinstance(record, dict) or name not in record:
        keys = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(
            f"a training record has no {what} field {name!r} (it has {keys}); set the matching "
            "*_field key of the recipe"
        )
    return record[name]


def _chat_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    if tokenizer.chat_template is None:
        raise ValueError(
            "chat formatting needs a tokenizer with a chat template, and this tokenizer has no chat "
            "template: use the checkpoint's own tokenizer, or plain prompt/response records with "
            "chat_template false"
        )
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _prompt_and_response(record: dict[str, Any], config: TrainConfig, tokenizer) -> tuple[str, str]:
    """Chat records (``messages``, the last one the assistant's answer) always go through the chat
    template; prompt/response records do when ``chat_template`` is set."""
    if isinstance(record, dict) and config.messages_field in record:
        messages = record[config.messages_field]
        if not messages or messages[-1].get("role") != "assistant":
            raise ValueError("a chat record must end with an assistant message (the response to train on)")
        return _chat_prompt(tokenizer, messages[:-1]), messages[-1]["content"]
    prompt = _field(record, config.prompt_field, "prompt")
    response = _field(record, config.response_field, "response")
    if config.chat_template:
        prompt = _chat_prompt(tokenizer, [{"role": "user", "content": prompt}])
    return prompt, response


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def segments(records: Iterable[dict[str, Any]], config: TrainConfig, tokenizer: PreTrainedTokenizerBase) -> Iterator[Segment]:
    """Token segments, each ending with EOS; tokenised in chunks (fast tokenizers batch them)."""
    eos = tokenizer.eos_token_id
    for chunk in _chunks(records, TOKENIZE_CHUNK):
        if config.objective == "pretrain":
            texts = [_field(r, config.text_field, "text") for r in chunk]
            for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
                yield Segment(ids + [eos])
            continue
        pairs = [_prompt_and_response(r, config, tokenizer) for r in chunk]
        prompts = tokenizer([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
        responses = tokenizer([r for _, r in pairs], add_special_tokens=False)["input_ids"]
        for prompt, response in zip(prompts, responses):
            yield Segment(prompt + response + [eos], prompt_length=len(prompt))


def rows(segment_stream: Iterable[Segment], config: TrainConfig, eos_id: int) -> Iterator[tuple[list[int], int]]:
    """``(ids, prompt_length)`` rows of ``seq_len`` tokens.

    Packed objectives concatenate segments and cut the stream (the last partial row is
    dropped); sft-llada pads each example with EOS and skips examples longer than ``seq_len``.
    """
    length = config.seq_len
    if config.objective == "sft-llada":
        skipped = total = 0
        for segment in segment_stream:
            total += 1
            if len(segment.ids) <= length and segment.prompt_length < len(segment.ids) - 1:
                yield segment.ids + [eos_id] * (length - len(segment.ids)), segment.prompt_length
            else:
                skipped += 1
        if skipped:
            warnings.warn(
                f"skipped {skipped} of {total} SFT examples: longer than seq_len={length} tokens "
                "(prompt + response + EOS) or with an empty response; raise seq_len to keep them",
                stacklevel=2,
            )
        return
    buffer: list[int] = []
    for segment in segment_stream:
        buffer.extend(segment.ids)
        while len(buffer) >= length:
            yield buffer[:length], 0
            buffer = buffer[length:]


def _empty_data_error(config: TrainConfig) -> ValueError:
    source = config.data_files or config.hf_dataset or "the synthetic curriculum"
    why = (
        f"every example is longer than seq_len={config.seq_len} or has an empty response"
        if config.objective == "sft-llada"
        else f"it holds fewer than seq_len={config.seq_len} tokens"
    )
    return ValueError(f"no training rows from {source}: the data is empty or {why}; add data or lower seq_len")


# --------------------------------------------------------------------------- the rows of each step


class PackedRows:
    """All rows in memory; sample ``g`` maps to a row through a per-epoch permutation."""

    def __init__(self, config: TrainConfig, tokenizer: PreTrainedTokenizerBase):
        built = list(rows(segments(read_records(config), config, tokenizer), config, tokenizer.eos_token_id))
        if not built:
            raise _empty_data_error(config)
        self.ids = torch.tensor([ids for ids, _ in built], dtype=torch.long)
        self.prompt_lengths = torch.tensor([p for _, p in built], dtype=torch.long)
        self.seed = config.seed
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.ids)

    def _row(self, sample: int) -> int:
        epoch, position = divmod(sample, len(self.ids))
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, ORDER, epoch))
            self._epoch, self._order = epoch, torch.randperm(len(self.ids), generator=generator)
        return int(self._order[position])

    def get(self, samples: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.tensor([self._row(s) for s in samples], dtype=torch.long)
        return self.ids[index], self.prompt_lengths[index]


class StreamingRows:
    """Rows read lazily, epoch after epoch; samples must be asked for in increasing order."""

    def __init__(self, config: TrainConfig, tokenizer: PreTrainedTokenizerBase):
        self.config, self.tokenizer = config, tokenizer
        self._epoch, self._next = -1, 0
        self._stream: Iterator[tuple[list[int], int]] = iter(())

    def _start_epoch(self) -> None:
        self._epoch += 1
        records = read_records(self.config, self._epoch)
        self._stream = rows(segments(records, self.config, self.tokenizer), self.config, self.tokenizer.eos_token_id)

    def _advance(self) -> tuple[list[int], int]:
        row = next(self._stream, None)
        if row is None:  # the epoch is over (or not begun): start the next one
            self._start_epoch()
            row = next(self._stream, None)
            if row is None:
                raise _empty_data_error(self.config)
        return row

    def get(self, samples: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        picked: dict[int, tuple[list[int], int]] = {}
        for sample in sorted(samples):
            if sample < self._next:
                raise ValueError(f"streaming rows are read forward only; sample {sample} was already passed")
            while self._next <= sample:
                row = self._advance()
                if self._next == sample:
                    picked[sample] = row
                self._next += 1
        ordered = [picked[s] for s in samples]
        return (
            torch.tensor([ids for ids, _ in ordered], dtype=torch.long),
            torch.tensor([p for _, p in ordered], dtype=torch.long),
        )


def load_rows(config: TrainConfig, tokenizer: PreTrainedTokenizerBase) -> PackedRows | StreamingRows:
    return StreamingRows(config, tokenizer) if config.streaming else PackedRows(config, tokenizer)


def step_length(config: TrainConfig, step: int) -> int:
    """LLaDA's random-length batches: with ``random_length_prob`` a step's rows are cut to a
    length uniform on ``[1, seq_len]``; the draw depends on ``(seed, step)`` only."""
    rng = random.Random(derive_seed(config.seed, RANDOM_LENGTH, step))
    if rng.random() < config.random_length_prob:
        return rng.randint(1, config.seq_len)
    return config.seq_len


def step_pad_length(config: TrainConfig, step: int) -> int:
    """sft-llada's padding length: with ``random_pad_prob`` a step's EOS padding ends at a length
    log-uniform on ``[1, seq_len]`` (no example is cut: a longer one keeps its own length), so the
    model learns answers followed by EOS runs of every order of magnitude while most steps stay
    short and cheap; the draw depends on ``(seed, step)`` only."""
    rng = random.Random(derive_seed(config.seed, RANDOM_PAD, step))
    if rng.random() < config.random_pad_prob:
        return max(1, round(config.seq_len ** rng.random()))
    return config.seq_len


def _sft_rows_padded_to(ids: torch.Tensor, prompt_lengths: torch.Tensor, length: int, row_keys) -> MicroBatch:
    """sft-llada rows whose EOS padding stops at ``length``, or at the example's own EOS where that
    comes later; positions past a row's end are hidden. The micro-batch is as wide as its longest
    row, so a short step costs little."""
    if length >= ids.shape[1]:
        return MicroBatch(ids, None, prompt_lengths, ids.numel(), row_keys)
    # every row ends with EOS (its own, then padding): the example ends one past its last other token
    trailing_eos = (ids == ids[:, -1:]).flip(1).long().cumprod(1).sum(1)
    example_lengths = ids.shape[1] - trailing_eos + 1
    row_lengths = example_lengths.clamp(min=length)
    width = int(row_lengths.max())
    attention = (torch.arange(width)[None, :] < row_lengths[:, None]).long()
    hidden = None if bool(attention.all()) else attention
    return MicroBatch(ids[:, :width], hidden, prompt_lengths, int(attention.sum()), row_keys)


def two_segment_cut(config: TrainConfig, step: int, sample: int, length: int) -> int | None:
    """iLLaDA's split: with ``two_segment_prob`` a row becomes two segments ``[:cut]`` and
    ``[cut:]``; the draw depends on ``(seed, step, sample)`` only."""
    if length < 2:
        return None
    rng = random.Random(derive_seed(config.seed, TWO_SEGMENT, step, sample))
    if rng.random() < config.two_segment_prob:
        return rng.randint(1, length - 1)
    return None


def micro_batch(
    ids: torch.Tensor, prompt_lengths: torch.Tensor, samples: list[int], step: int,
    config: TrainConfig, pad_id: int,
) -> MicroBatch:
    """The rows of ``samples`` as the model sees them at ``step``.

    A split row becomes two right-padded rows whose padding the attention mask hides, so the
    segments do not attend to each other and each starts at position 0 — the effect of
    variable-length attention, paid for with padding.
    """
    whole_rows = [(sample, 0) for sample in samples]
    if config.objective == "sft-llada":
        return _sft_rows_padded_to(ids, prompt_lengths, step_pad_length(config, step), whole_rows)
    length = step_length(config, step)
    ids = ids[:, :length]
    extra, remainder_lengths, second_rows = [], [], []
    keep = torch.ones_like(ids, dtype=torch.bool)
    for row, sample in enumerate(samples):
        cut = two_segment_cut(config, step, sample, length)
        if cut is None:
            continue
        second = torch.full((length,), pad_id, dtype=ids.dtype)
        second[: length - cut] = ids[row, cut:]
        extra.append(second)
        remainder_lengths.append(length - cut)
        second_rows.append((sample, 1))
        keep[row, cut:] = False
    if not extra:
        return MicroBatch(ids, None, None, ids.numel(), whole_rows)
    ids = torch.where(keep, ids, torch.full_like(ids, pad_id))
    second_keep = torch.arange(length)[None, :] < torch.tensor(remainder_lengths)[:, None]
    attention = torch.cat([keep, second_keep]).long()
    return MicroBatch(
        torch.cat([ids, torch.stack(extra)]), attention, None, int(attention.sum()), whole_rows + second_rows
    )


def masking_generators(batch: MicroBatch, step: int, config: TrainConfig) -> list[torch.Generator]:
    """One generator per row of ``batch``, seeded by ``(seed, step, sample, segment)`` alone: a
    row's masks do not depend on the micro-batch, nor the process, that trains it. They are CPU
    generators on every device, because a random-padding step's micro-batch is as wide as its
    longest row, and only CPU draws keep a row's uniforms the same at any width."""
    return [
        seeded_generator(derive_seed(config.seed, MASKING, step, sample, segment))
        for sample, segment in batch.row_keys
    ]
