"""What the adapter and CLI tests run on: a char-level tokenizer, a copying toy model with exactly
known scores, a tiny checkpoint directory, and small lm-eval tasks written into a folder."""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from illada_eval.train.tokenizer import CHAR_ALPHABET, SPECIAL_TOKENS, build_char_tokenizer
from illada_eval.train.tokenizer import MASK_TOKEN_ID as MASK_ID
from tiny import tiny_model


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Import into a test module to run its in-process evaluations on one torch thread, as child
    processes do (OMP_NUM_THREADS=1): on a shared, loaded CPU torch's thread pool waits far more
    than it computes (a tiny forward pass: 8 ms on one thread, 370 ms on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
VOCAB = len(SPECIAL_TOKENS) + len(CHAR_ALPHABET)
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eot>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def read_results(output: Path) -> dict:
    """The results JSON a run wrote for ``--output NAME.json`` (lm-eval's ``NAME_<time>.json``) or
    ``--output DIR`` (``DIR/<model>/results_<time>.json``)."""
    (path,) = output.rglob("results_*.json") if output.is_dir() else output.parent.glob(f"{output.stem}_*.json")
    return json.loads(path.read_text())


def char_tokenizer() -> PreTrainedTokenizerFast:
    """The trainer's char-level tokenizer (one token per character, no BOS added), with a chat
    template."""
    tokenizer = build_char_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


class CopyToy:
    """A logits callable whose answers are known exactly.

    After the last ``=`` of a row, position ``k`` predicts the ``k``-th character between the last
    ``#`` and that ``=`` (then EOS) with logit ``STRENGTH``, all else 0; every other position is
    uniform. No prediction depends on masked positions, so the ELBO and the confidence score are
    both the exact log-probability, and generation copies: ``"copy #42="`` gives ``"42"``.
    """

    STRENGTH = 10.0

    def __init__(self, tokenizer: PreTrainedTokenizerFast, max_length: int = 256) -> None:
        vocab = tokenizer.get_vocab()
        self.equals, self.hash = vocab["="], vocab["#"]
        self.config = SimpleNamespace(mask_token_id=MASK_ID, eos_token_id=EOS_ID, max_position_embeddings=max_length)
        self.calls = 0

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        logits = torch.zeros(*input_ids.shape, VOCAB)
        for row, ids in enumerate(input_ids.tolist()):
            if self.equals not in ids:
                continue
            end = len(ids) - 1 - ids[::-1].index(self.equals)
            start = max((i for i in range(end) if ids[i] == self.hash), default=end - 1) + 1
            source = ids[start:end]
            for position in range(end + 1, len(ids)):
                offset = position - end - 1
                logits[row, position, source[offset] if offset < len(source) else EOS_ID] = self.STRENGTH
        return logits

    @classmethod
    def logprob(cls, hit: bool) -> float:
        """Log-probability of one token after ``=``: the predicted one (``hit``) or another."""
        normaliser = math.exp(cls.STRENGTH) + VOCAB - 1
        return (cls.STRENGTH if hit else 0.0) - math.log(normaliser)


def write_checkpoint(directory: Path, seed: int = 0, max_length: int = 128) -> Path:
    """A tiny iLLaDA network (random weights) and the char tokenizer, as save_pretrained writes them."""
    model = tiny_model(seed, vocab_size=VOCAB, max_position_embeddings=max_length, eos_token_id=EOS_ID,
                       pad_token_id=PAD_ID, bos_token_id=BOS_ID, mask_token_id=MASK_ID)
    model.save_pretrained(directory)
    char_tokenizer().save_pretrained(directory)
    return directory


# (source the toy copies, choices, gold index): the toy picks the choice equal to the source,
# which is the gold answer in 3 of 4 documents
COPY_DOCS = [
    ("42", ["42", "17", "990"], 0),
    ("7", ["3", "7", "77"], 1),
    ("135", ["531", "15", "135"], 2),
    ("88", ["88", "18"], 1),
]


def copy_score(choice: str, source: str) -> float:
    """The exact log-probability the toy gives ``choice`` after ``#source=``."""
    return sum(CopyToy.logprob(k < len(source) and c == source[k]) for k, c in enumerate(choice))
TEXT_DOCS = [
    "the quick brown fox jumps over the lazy dog",
    "pack my box with five dozen liquor jugs",
    "how vexingly quick daft zebras jump",
]


def write_tasks(directory: Path, scoring: dict | None = None) -> Path:
    """Four lm-eval tasks over local jsonl files, one per request type.

    ``toy_mc`` (multiple choice, scored with ``scoring`` as its ``metadata.illada``), ``toy_ll``
    (loglikelihood: acc is the greedy flag), ``toy_gen`` (generation, exact match), ``toy_ppl``
    (rolling loglikelihood).
    """
    directory.mkdir(parents=True, exist_ok=True)
    copy_docs = [
        {"question": f"copy #{source}", "choices": choices, "gold": gold, "answer": choices[gold]}
        for source, choices, gold in COPY_DOCS
    ]
    _write_jsonl(directory / "copy.jsonl", copy_docs)
    _write_jsonl(directory / "text.jsonl", [{"text": text} for text in TEXT_DOCS])
    common = {
        "dataset_path": "json",
        "test_split": "train",
        "num_fewshot": 0,
    }
    copy_data = {"dataset_kwargs": {"data_files": str(directory / "copy.jsonl")}}
    tasks = {
        "toy_mc": {
            **common, **copy_data,
            "output_type": "multiple_choice",
            "doc_to_text": "{{question}}=",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "{{gold}}",
            "target_delimiter": "",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0, "illada": scoring or {"scoring": "confidence"}},
        },
        "toy_ll": {
            **common, **copy_data,
            "output_type": "loglikelihood",
            "doc_to_text": "{{question}}=",
            "doc_to_target": "{{answer}}",
            "target_delimiter": "",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0, "illada": {"scoring": "elbo", "mc_num": 4}},
        },
        "toy_gen": {
            **common, **copy_data,
            "output_type": "generate_until",
            "doc_to_text": "{{question}}=",
            "doc_to_target": "{{answer}}",
            "generation_kwargs": {"until": ["\n"], "max_gen_toks": 8, "block_length": 4, "steps": 8,
                                  "variable_length": True, "do_sample": False},
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0, "illada": {"chat_template": False}},
        },
        "toy_ppl": {
            **common,
            "dataset_kwargs": {"data_files": str(directory / "text.jsonl")},
            "output_type": "loglikelihood_rolling",
            "doc_to_text": "",
            "doc_to_target": "{{text}}",
            "metric_list": [
                {"metric": "word_perplexity", "aggregation": "weighted_perplexity", "higher_is_better": False},
                {"metric": "bits_per_byte", "aggregation": "bits_per_byte", "higher_is_better": False},
            ],
            "metadata": {"version": 1.0, "illada": {"mc_num": 2, "mc_batch_size": 2}},
        },
    }
    for name, config in tasks.items():
        (directory / f"{name}.yaml").write_text(json.dumps({"task": name, **config}, indent=1))
    return directory


def write_copy_task(directory: Path, name: str, count: int, illada: dict) -> Path:
    """A multiple-choice copy task with ``count`` documents (for runs long enough to interrupt)."""
    directory.mkdir(parents=True, exist_ok=True)
    docs = []
    for i in range(count):
        source = str(100 + 37 * i % 900)
        choices = [source, source[::-1] + "1", str(int(source) + 1)]
        docs.append({"question": f"copy #{source}", "choices": choices, "gold": i % 3})
    _write_jsonl(directory / f"{name}.jsonl", docs)
    config = {
        "task": name, "dataset_path": "json", "test_split": "train", "num_fewshot": 0,
        "dataset_kwargs": {"data_files": str(directory / f"{name}.jsonl")},
        "output_type": "multiple_choice", "doc_to_text": "{{question}}=", "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{gold}}", "target_delimiter": "",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0, "illada": illada},
    }
    (directory / f"{name}.yaml").write_text(json.dumps(config, indent=1))
    return directory


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_causal_checkpoint(directory: Path, seed: int = 0) -> Path:
    """A tiny autoregressive transformers model (Llama) with the char tokenizer, for ``hf:``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID)
    LlamaForCausalLM(config).save_pretrained(directory)
    char_tokenizer().save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory):
    return write_tasks(tmp_path_factory.mktemp("tasks"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt"))
