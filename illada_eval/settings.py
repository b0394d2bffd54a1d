"""The diffusion backend's settings, each defined once: name, type, default, allowed values, help.

Everything else is derived from these definitions: the fields of :class:`ScoringSettings` and
:class:`GenerationSettings`, the keyword arguments ``DiffusionLM`` accepts in ``model_args``, the
keys of ``--scoring`` and ``metadata.illada``, the diffusion-only ``generation_kwargs``, the
validation of every value and the "did you mean" hints, and the settings list in ``--help``.
Adding a setting is one line in :data:`SCORING` or :data:`GENERATION` (plus the code that reads it).

This module imports nothing heavy, so the command line validates settings before torch loads.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, make_dataclass, replace
from typing import Any

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


@dataclass(frozen=True)
class Setting:
    """One setting: a value of ``type`` (None allowed when the default is None)."""

    name: str
    type: type  # int, float, str or bool
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None

    def parse(self, value: Any, where: str) -> Any:
        """``value`` (a Python value, or text from ``key=value`` and YAML) as this setting's type,
        checked; a ValueError names the setting, the value and what is allowed."""
        if value is None or (isinstance(value, str) and value.lower() == "none" and self.default is None):
            if self.default is None:
                return None
            raise ValueError(f"{where}: {self.name} needs a value ({self.help}); got None")
        try:
            parsed = _convert(value, self.type)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {self.name} must be {self.describe_type()}, got {value!r}") from None
        if self.choices and parsed not in self.choices:
            close = ([c for c in self.choices if c.startswith(str(parsed))]
                     or difflib.get_close_matches(str(parsed), self.choices, n=1))
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}: {self.name} must be one of {', '.join(self.choices)}, got {value!r}{hint}")
        if self.minimum is not None and parsed < self.minimum:
            raise ValueError(f"{where}: {self.name} must be at least {self.minimum:g}, got {value!r}")
        return parsed

    def describe_type(self) -> str:
        kind = {int: "an integer", float: "a number", bool: "true or false", str: "text"}[self.type]
        return kind + (f" >= {self.minimum:g}" if self.minimum is not None else "")


def _convert(value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in TRUE_WORDS:
            return True
        if str(value).lower() in FALSE_WORDS:
            return False
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool) or float(value) != int(float(value)):  # 2.5 is no integer
            raise ValueError(value)
        return int(float(value))
    return kind(value)


# Dream's reveal orders, as illada_eval.model.dream_sampler.DREAM_ALGS (a test keeps them equal)
DREAM_ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")
# settings that both loglikelihood and generate_until read (one entry in --help)
_CFG_SCALE = Setting("cfg_scale", float, 0.0, "unsupervised classifier-free guidance scale", minimum=0)
_OFFICIAL_NUMERICS = Setting(
    "official_numerics", bool, False,
    "LLaDA's numerics, in the model's dtype as its code takes them (bfloat16 rounding and its ties): the "
    "sampler's confidences and guidance, the ELBO's log-probabilities and guidance, the guidance of "
    "greedy_rule=llada; confidence and Dream scoring have no official code to follow and ignore it")

# How ``loglikelihood`` scores a continuation (a task's ``metadata.illada``, ``--scoring``).
SCORING: tuple[Setting, ...] = (
    Setting("scoring", str, "elbo", "confidence (iLLaDA), elbo (LLaDA's Monte Carlo bound) or dream (Dream's)",
            choices=("confidence", "elbo", "dream")),
    Setting("mc_num", int, 128, "ELBO draws (a one-token continuation takes one exact pass)", minimum=1),
    Setting("mc_batch_size", int, 32, "ELBO draws stratified together (LLaDA's mini-batch)", minimum=1),
    _CFG_SCALE,
    Setting("greedy", bool, True, "compute lm-eval's is_greedy (false: always false, as LLaDA's "
            "is_check_greedy=False; extra passes, except greedy_rule=reveal under confidence scoring)"),
    Setting("greedy_rule", str, "reveal", "is_greedy's rule: reveal (the continuation's tokens revealed most "
            "probable first, each the model's top token; free under confidence scoring) or llada (LLaDA's: "
            "free greedy decoding, one token per step, reproduces the continuation)", choices=("reveal", "llada")),
    _OFFICIAL_NUMERICS,
)

# How ``generate_until`` decodes (``model_args`` defaults, then each request's generation_kwargs).
GENERATION: tuple[Setting, ...] = (
    Setting("gen_length", int, 256, "token budget when a request gives no max_gen_toks", minimum=1),
    Setting("block_length", int, 32, "tokens per semi-autoregressive block", minimum=1),
    Setting("steps", int, None, "denoising steps over the budget (default: one token per step)", minimum=1),
    Setting("steps_per_block", int, None, "denoising steps per block (wins over steps)", minimum=1),
    Setting("remasking", str, "low_confidence", "which tokens stay masked after a step (LLaDA's sampler), or "
            "a Dream alg (Dream's sampler, the budget as one canvas)", choices=("low_confidence", "random", *DREAM_ALGS)),
    Setting("temperature", float, 0.0, "sampling temperature (0: greedy)", minimum=0),
    Setting("alg_temp", float, None, "Dream's sampler: randomness of the reveal order", minimum=0),
    Setting("top_p", float, None, "Dream's sampler: nucleus sampling", minimum=0),
    Setting("top_k", int, None, "Dream's sampler: top-k sampling", minimum=1),
    Setting("variable_length", bool, True, "iLLaDA's block-by-block variable-length generation"),
    Setting("logits_eos_inf", bool, False, "LLaDA's logits_eos_inf: EOS is never proposed"),
    Setting("confidence_eos_eot_inf", bool, False,
            "LLaDA's confidence_eos_eot_inf: EOS and end-of-turn are revealed last in their block"),
    _OFFICIAL_NUMERICS,
    Setting("keep_text_after_eos", bool, False,
            "LLaDA's evaluation text (fixed length, LLaDA's sampler): the output is not cut at EOS but decoded "
            "with special tokens, cut at the task's stop strings only, then stripped of special tokens"),
    _CFG_SCALE,
    Setting("threshold", float, None, "Fast-dLLM parallel decoding: unmask every token this confident",
            minimum=0),
    # the same modes as illada_eval.model.kv_cache.KV_CACHE_MODES (a test keeps them equal)
    Setting("kv_cache", str, None, "Fast-dLLM approximate key/value cache", choices=("prefix", "dual")),
)

# ``dtype`` values of the backend and ``--dtype`` ("auto": as the checkpoint stores them)
DTYPES = ("auto", "bfloat16", "float16", "float32", "float64")
# sequences per model call unless ``--batch-size`` says otherwise ("auto": the largest that fits)
DEFAULT_BATCH_SIZE = 8

BY_NAME: dict[str, Setting] = {s.name: s for s in (*SCORING, *GENERATION)}
# ``--scoring`` and ``metadata.illada`` keys
SCORING_KEYS = tuple(s.name for s in SCORING)
# generation_kwargs lm-eval's own backends understand; the other generation settings are the
# diffusion sampler's, stripped before a task goes to an autoregressive backend
LM_EVAL_GENERATION_KEYS = ("until", "max_gen_toks", "do_sample", "temperature")
DIFFUSION_GENERATION_KEYS = tuple(s.name for s in GENERATION if s.name not in LM_EVAL_GENERATION_KEYS + ("gen_length",))


def parse_settings(values: Mapping[str, Any], allowed: Iterable[str], where: str) -> dict[str, Any]:
    """``values`` checked against the ``allowed`` names: unknown keys get a "did you mean", each
    known setting is parsed by its definition, other allowed keys pass as they are."""
    allowed = tuple(allowed)
    unknown = [key for key in values if key not in allowed]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
                         f"the keys are {', '.join(sorted(allowed))}")
    return {key: BY_NAME[key].parse(value, where) if key in BY_NAME else value for key, value in values.items()}


def check_dtype(dtype: Any, where: str) -> None:
    """A ValueError naming ``dtype`` unless it is None, a torch dtype or one of :data:`DTYPES`."""
    if dtype is None or not isinstance(dtype, str) or dtype in DTYPES:
        return
    close = difflib.get_close_matches(dtype, DTYPES, n=2)
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    raise ValueError(f"{where}: unknown dtype {dtype!r}{hint}; use one of {', '.join(DTYPES)}")


def _settings_class(name: str, settings: tuple[Setting, ...], doc: str) -> type:
    """A frozen dataclass with one field per setting; construction parses and checks each value."""

    def __post_init__(self: Any) -> None:
        for setting in settings:
            object.__setattr__(self, setting.name, setting.parse(getattr(self, setting.name), name))

    cls = make_dataclass(name, [(s.name, Any, s.default) for s in settings], frozen=True,
                         namespace={"__post_init__": __post_init__, "__doc__": doc})
    cls.__module__ = __name__
    return cls


_ScoringBase = _settings_class("ScoringSettings", SCORING, "How loglikelihood scores a continuation.")
_GenerationBase = _settings_class("GenerationSettings", GENERATION, "How generate_until decodes.")


class ScoringSettings(_ScoringBase):  # type: ignore[misc, valid-type]
    """How ``loglikelihood`` scores a continuation (fields: :data:`SCORING`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        group = min(self.mc_batch_size, self.mc_num)  # the draws are taken in groups of this size
        if self.mc_num % group:
            raise ValueError(
                f"mc_num ({self.mc_num}) must be a multiple of mc_batch_size ({self.mc_batch_size}): "
                f"use mc_num={self.mc_num - self.mc_num % group} or {self.mc_num - self.mc_num % group + group}"
            )


class GenerationSettings(_GenerationBase):  # type: ignore[misc, valid-type]
    """How ``generate_until`` decodes (fields: :data:`GENERATION`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.remasking in DREAM_ALGS and (self.kv_cache or self.threshold is not None or self.cfg_scale > 0
                                             or self.keep_text_after_eos):
            raise ValueError(
                f"remasking={self.remasking!r} is Dream's sampler, which has no kv_cache, threshold, "
                "cfg_scale or keep_text_after_eos (Dream's harness cuts at the first EOS): leave them unset, "
                "or pick LLaDA's sampler (low_confidence / random)"
            )
        if self.keep_text_after_eos and self.variable_length:
            raise ValueError(
                "keep_text_after_eos keeps what the model writes after an EOS, but variable_length stops "
                "decoding at the first EOS: set variable_length=false (LLaDA's fixed-length canvas) or "
                "keep_text_after_eos=false"
            )

    def plan(self, max_gen_toks: int) -> tuple[int, int, int]:
        """``(gen_length, block_length, steps)`` for the sampler from a request's budget.

        The block is at most the budget; the budget is rounded up to whole blocks (the output is
        cut back to ``max_gen_toks``); a block gets ``steps * block / budget`` steps (at least
        one, at most one per token).
        """
        if max_gen_toks < 1:
            raise ValueError(f"max_gen_toks must be positive, got {max_gen_toks}")
        block = min(self.block_length, max_gen_toks)
        num_blocks = -(-max_gen_toks // block)
        if self.steps_per_block is not None:
            per_block = self.steps_per_block
        else:
            steps = self.steps if self.steps is not None else max_gen_toks
            per_block = round(steps * block / max_gen_toks)
        per_block = min(max(1, per_block), block)
        return num_blocks * block, block, num_blocks * per_block


def updated(settings: Any, overrides: Mapping[str, Any], where: str) -> Any:
    """``settings`` with the keys of ``overrides`` that name its fields put on top (None values
    skipped); a bad value raises ValueError naming ``where``."""
    known = {f.name for f in fields(settings)}
    values = {key: value for key, value in overrides.items() if key in known and value is not None}
    try:
        return replace(settings, **values)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def settings_help() -> str:
    """The settings list for ``--help``: name, default and meaning of each."""
    def line(s: Setting) -> str:
        allowed = f" [{'|'.join(s.choices)}]" if s.choices else ""
        return f"  {s.name}={s.default}{allowed}: {s.help}"

    return "\n".join(["likelihood settings (--scoring, --model-args, a task's metadata.illada):",
                      *map(line, SCORING),
                      "generation settings (--gen-kwargs, --model-args, a task's generation_kwargs):",
                      *(line(s) for s in GENERATION if s not in SCORING)])
