"""The training configuration: one dataclass, YAML recipes, and ``--key value`` overrides.

Defaults follow the papers (models-and-methods.md section 2); recipes under ``train/recipes/``
set what differs per objective. Every field is a recipe key and a command-line flag; unknown keys
are errors, never silently ignored.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..model import ILLaDAConfig

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
OBJECTIVES = ("pretrain", "sft-llada", "sft-illada")
DECAYS = ("cosine", "linear")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")


@dataclass
class TrainConfig:
    # --- what is trained ---
    objective: str = "pretrain"  # pretrain | sft-llada | sft-illada
    init_from: str | None = None  # checkpoint directory or Hub id; None = a fresh model from `model`
    model: dict[str, Any] = field(default_factory=dict)  # ILLaDAConfig fields of a fresh model
    tokenizer: str | None = None  # directory / Hub id, "char" or "bpe" to build one; None = init_from's
    tokenizer_vocab_size: int = 32000  # size of a "bpe" tokenizer built from the training text

    # --- data ---
    data_files: list[str] = field(default_factory=list)  # local .txt (a document per line), .jsonl, .json
    hf_dataset: str | None = None  # a Hugging Face dataset id, read with `datasets`
    hf_config: str | None = None
    hf_split: str = "train"
    streaming: bool = False  # read the data lazily (large corpora) instead of packing it in memory
    shuffle_buffer: int = 10000  # streaming only: size of the shuffle buffer
    synthetic: bool = False  # train on the demo curriculum of train/synthetic.py
    synthetic_examples: int = 20000
    text_field: str = "text"  # pre-training records
    prompt_field: str = "prompt"  # SFT records: prompt/response pairs ...
    response_field: str = "response"
    messages_field: str = "messages"  # ... or chat messages [{role, content}, ...]
    chat_template: bool = False  # format SFT prompts with the tokenizer's chat template
    seq_len: int = 4096
    random_length_prob: float = 0.0  # LLaDA: 1% of batches cut to a random length in [1, seq_len]
    two_segment_prob: float = 0.0  # iLLaDA: 30% of sequences split into two random-length segments
    random_pad_prob: float = 0.0  # sft-llada: share of steps whose EOS padding ends at a log-uniform length

    # --- optimisation ---
    batch_size: int = 1280  # global: sequences per optimizer step, over all processes
    micro_batch_size: int = 4  # sequences per process per forward pass
    max_steps: int | None = None  # None: derived from `epochs`
    epochs: float | None = None
    lr: float = 2e-4  # peak
    min_lr: float = 5e-6  # end of the decay
    warmup_steps: int = 2000
    decay: str = "cosine"  # shape of the final decay: cosine (pre-training) | linear (SFT)
    decay_fraction: float = 0.1  # share of max_steps spent in the final decay
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off
    mask_eps: float = 1e-3  # masking probability p = (1 - eps) t + eps
    mixed_precision: str = "auto"  # auto (bf16 where supported) | no | bf16 | fp16
    gradient_checkpointing: bool = False
    fsdp: bool = False  # shard parameters, gradients and optimizer state (FSDP full shard)
    cpu: bool = False  # train on CPU even where a GPU exists
    seed: int = 0

    # --- output ---
    output_dir: str = "runs/train"
    export_dir: str | None = None  # also write the final model here, without training state
    overwrite: bool = False  # allow export_dir to replace a model there or in the installed package
    save_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    resume: bool = False  # continue from output_dir's latest checkpoint
    progress: bool = True


# fields that decide which rows each step sees: a resumed run must keep them
DATA_STREAM_FIELDS = (
    "objective", "data_files", "hf_dataset", "hf_config", "hf_split", "streaming", "shuffle_buffer",
    "synthetic", "synthetic_examples", "text_field", "prompt_field", "response_field",
    "messages_field", "chat_template", "seq_len", "batch_size", "seed",
    "random_length_prob", "two_segment_prob", "random_pad_prob",
)
FIELD_TYPES = typing.get_type_hints(TrainConfig)
FIELD_NAMES = [f.name for f in dataclasses.fields(TrainConfig)]


def _unknown_key_error(key: str, known: list[str], where: str) -> ValueError:
    close = difflib.get_close_matches(key, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"unknown key {key!r} in {where}.{hint} Known keys: {', '.join(known)}")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` as the field's type, or a ValueError naming the key and what it takes."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        origin = typing.get_origin(option) or option
        if origin is bool and isinstance(value, bool):
            return value
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin is float and isinstance(value, str):
            try:  # YAML 1.1 reads "2e-3" (no dot) as a string
                return float(value)
            except ValueError:
                pass
        if origin is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if origin is list and isinstance(value, (list, str)):
            return [str(v) for v in ([value] if isinstance(value, str) else value)]
        if origin is dict and isinstance(value, dict):
            return dict(value)
    quote = " (YAML reads yes/no/on/off as booleans: quote the value)" if isinstance(value, bool) else ""
    raise ValueError(f"{key}: expected {hint}, got {value!r}{quote}")


def _check_model_keys(model: dict[str, Any]) -> None:
    known = [name for name in inspect.signature(ILLaDAConfig.__init__).parameters if name not in ("self", "kwargs")]
    for key in model:
        if key not in known:
            raise _unknown_key_error(key, known, "`model` (the ILLaDAConfig of a fresh model)")


def validate(config: TrainConfig) -> TrainConfig:
    """Check values a user can get wrong, with messages that say what to change."""
    checks = [
        (config.objective in OBJECTIVES, f"objective must be one of {OBJECTIVES}, got {config.objective!r}"),
        (config.decay in DECAYS, f"decay must be one of {DECAYS}, got {config.decay!r}"),
        (config.mixed_precision in MIXED_PRECISION, f"mixed_precision must be one of {MIXED_PRECISION}"),
        (config.seq_len >= 2, f"seq_len must be at least 2, got {config.seq_len}"),
        (config.micro_batch_size >= 1, "micro_batch_size must be at least 1"),
        (config.batch_size % config.micro_batch_size == 0,
         f"batch_size ({config.batch_size}) must be a multiple of micro_batch_size ({config.micro_batch_size})"),
        (all(0.0 <= p <= 1.0 for p in (config.random_length_prob, config.two_segment_prob, config.random_pad_prob)),
         "random_length_prob, two_segment_prob and random_pad_prob are probabilities in [0, 1]"),
        (config.objective != "sft-llada" or (config.random_length_prob == 0 and config.two_segment_prob == 0),
         "sft-llada keeps every example whole: set random_length_prob and two_segment_prob to 0 "
         "(they apply to the packed objectives pretrain and sft-illada)"),
        (config.objective == "sft-llada" or config.random_pad_prob == 0,
         "random_pad_prob varies sft-llada's EOS padding; the packed objectives have none: set it to 0"),
        (0.0 <= config.decay_fraction <= 1.0, "decay_fraction must be in [0, 1]"),
        (0.0 <= config.min_lr <= config.lr, f"min_lr ({config.min_lr}) must be in [0, lr={config.lr}]"),
        (config.max_steps is not None or config.epochs is not None,
         "set max_steps (optimizer steps) or epochs (passes over the data)"),
        (config.max_steps is None or config.max_steps >= 1, "max_steps must be at least 1"),
        (config.save_every >= 1 and config.log_every >= 1, "save_every and log_every must be at least 1"),
        (config.keep_checkpoints >= 1, "keep_checkpoints must be at least 1"),
        (config.lr > 0, f"lr must be positive, got {config.lr}"),
        (not (config.streaming and config.epochs is not None and config.max_steps is None),
         "streaming data has no known length: set max_steps instead of epochs"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    _check_model_keys(config.model)
    return config


def check_output_paths(config: TrainConfig) -> None:
    """The folders the run writes are folders, and the export replaces nothing a user owns
    (an earlier export, the installed package's files) unless ``overwrite`` says so."""
    for key in ("output_dir", "export_dir"):
        value = getattr(config, key)
        if value is not None and Path(value).expanduser().exists() and not Path(value).expanduser().is_dir():
            raise ValueError(f"{key} {value} is a file, not a folder; choose another --{key}")
    if config.export_dir is None or config.overwrite:
        return
    export = Path(config.export_dir).expanduser().resolve()
    package = next((root for root in package_roots() if export == root or root in export.parents), None)
    if package is not None:
        raise ValueError(f"export_dir {config.export_dir} is inside the installed illada-eval package ({package}); "
                         "choose another --export_dir, or pass --overwrite to replace the files there")
    if export.is_dir() and any(export.iterdir()):
        raise ValueError(f"export_dir {config.export_dir} already holds files; choose another --export_dir, "
                         "or pass --overwrite to replace the model there")


def package_roots() -> list[Path]:
    """The folders the installed package's modules live in (model/, train/ and tasks/ install as
    parts of illada_eval)."""
    import importlib.util

    roots = []
    for name in ("illada_eval", "illada_eval.model", "illada_eval.train", "illada_eval.tasks"):
        spec = importlib.util.find_spec(name)
        roots += [Path(p).resolve() for p in (spec.submodule_search_locations or [])] if spec else []
    return roots


def resolve_recipe(name_or_path: str | Path) -> Path:
    """A recipe file: a path, or the name of a bundled recipe (``demo``, ``pretrain``, ...)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = RECIPES_DIR / f"{name_or_path}.yaml"
    if bundled.is_file():
        return bundled
    names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"no recipe file '{name_or_path}'; give a YAML path or one of {names}")


def _parse_value(key: str, text: str) -> Any:
    """Command-line text as YAML, except that a text field keeps its text (``--mixed_precision
    no`` is the string "no", not YAML's false)."""
    hint = FIELD_TYPES.get(key)
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if str in options and text.lower() not in ("null", "none", "~"):
        return text
    return yaml.safe_load(text) if text else ""


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """``--key value`` / ``--key=value`` / bare ``--flag`` (true) into a dict; values read as YAML.

    ``--model.hidden_size 64`` sets one entry of the ``model`` mapping.
    """
    overrides: dict[str, Any] = {}
    index = 0
    while index < len(argv):
        token = argv[index]
        if not token.startswith("--") or token == "--":
            raise ValueError(f"expected --key value, got {token!r}")
        key, has_value, text = token[2:].partition("=")
        key = key.replace("-", "_")
        if not has_value:
            next_is_value = index + 1 < len(argv) and not argv[index + 1].startswith("--")
            text = argv[index + 1] if next_is_value else "true"
            index += next_is_value
        index += 1
        value = _parse_value(key, text)
        head, _, sub = key.partition(".")
        if sub:
            if head != "model":
                raise ValueError(f"--{key}: only `model` takes dotted keys (e.g. --model.hidden_size 64)")
            overrides.setdefault("model", {})[sub] = value
        else:
            overrides[key] = value
    return overrides


def build_config(values: dict[str, Any], where: str) -> TrainConfig:
    """A validated TrainConfig from a dict of keys (recipe and overrides merged)."""
    for key in values:
        if key not in FIELD_NAMES:
            raise _unknown_key_error(key, FIELD_NAMES, where)
    coerced = {key: _coerce(key, value, FIELD_TYPES[key]) for key, value in values.items()}
    return validate(TrainConfig(**coerced))


def load_config(recipe: str | Path | None, overrides: list[str] | dict[str, Any] = ()) -> TrainConfig:
    """The recipe's keys, then the overrides on top (``model`` entries merge one by one)."""
    values: dict[str, Any] = {}
    where = "the command line"
    if recipe is not None:
        path = resolve_recipe(recipe)
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"recipe {path} is not valid YAML: {error}") from error
        except UnicodeDecodeError as error:
            raise ValueError(f"recipe {path} is not UTF-8 text ({error.reason} at byte {error.start}); "
                             "save it as UTF-8") from None
        if not isinstance(values, dict):
            raise ValueError(f"recipe {path} must be a mapping of keys to values")
        where = f"recipe {path} or the command line"
    extra = parse_overrides(list(overrides)) if isinstance(overrides, (list, tuple)) else dict(overrides)
    if isinstance(extra.get("model"), dict) and isinstance(values.get("model"), dict):
        extra["model"] = {**values["model"], **extra["model"]}
    return build_config({**values, **extra}, where)


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
