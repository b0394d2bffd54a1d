"""The lm-evaluation-harness backend for masked diffusion LMs, registered as ``illada``.

``lm_eval.simple_evaluate(model="illada", model_args={"pretrained": PATH_OR_HUB_ID})`` runs any
iLLaDA or LLaDA checkpoint on lm-eval tasks once ``illada_eval`` is imported. Requests become
calls of the diffusion API in ``illada_eval.model``:

- ``loglikelihood``: iLLaDA's confidence score, LLaDA's Monte Carlo ELBO (exact in one pass for
  a one-token continuation) or Dream's Monte Carlo estimator (``scoring=dream``), with
  lm-eval's greedy flag (our reveal rule or LLaDA's, ``greedy_rule``), many documents per model call;
- ``loglikelihood_rolling``: the ELBO of each of lm-eval's rolling windows, summed;
- ``generate_until``: LLaDA's sampler (blocks, low-confidence remasking), variable length; or
  Dream's sampler when ``remasking`` is one of its ``alg`` orders.

Every request draws its random numbers from a seed derived from its own tokens, so a result
depends neither on the batch it ran in nor on the process that ran it: batch size and the number
of data-parallel processes do not change the metrics. Each finished request is written to
lm-eval's request cache (``use_cache``) as soon as it is done, so a killed run resumes where it
stopped.
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from lm_eval import utils as lm_utils
from lm_eval.api.instance import Instance
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
# importing lm_eval.models (for its utils) registers lm-eval's own backends first, so a registry
# holding "illada" still resolves "hf"
from lm_eval.models.utils import (
    Collator,
    _add_special_kwargs,
    handle_stop_sequences,
    has_bos_prefix,
    normalize_gen_kwargs,
    postprocess_generated_text,
)
from tqdm import tqdm

from illada_eval.model import (
    call_logits,
    confidence_score,
    elbo_loglikelihood,
    generate,
    llada_is_greedy,
    load_model,
    model_device,
    network_output,
    resolve_checkpoint,
)
from illada_eval.model.dream_likelihood import dream_loglikelihood
from illada_eval.model.dream_sampler import DREAM_ALGS, dream_generate
from illada_eval.model.masking import derive_seed
from illada_eval.settings import (
    BY_NAME,
    DEFAULT_BATCH_SIZE,
    GenerationSettings,
    ScoringSettings,
    check_dtype,
    parse_settings,
    updated,
)

log = logging.getLogger(__name__)

# token names that end a turn in the chat formats of the models we evaluate (LLaDA's, Qwen-style,
# and our trainer's tokenizers)
END_OF_TURN_TOKENS = ("<|eot_id|>", "<|im_end|>", "<|endoftext|>", "<eot>")
DEFAULT_MAX_LENGTH = 2048
# the largest batch ``batch_size="auto"`` tries (lm-eval's hf backend starts at 64 as well)
AUTO_MAX_BATCH_SIZE = 64
# ``pretrained="demo"``: the tiny model shipped inside the package
DEMO_MODEL_NAME = "demo"
DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo"


class CountingModel:
    """The logits callable with counters of model calls (the NFE of the speed figures) and of the
    sequences they ran (the forward passes, after duplicate inputs were merged), and a check that
    stops the run at the first NaN logit instead of scoring garbage."""

    def __init__(self, model: Callable[..., Any]) -> None:
        self.model = model
        self.calls = self.sequences = 0

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 logits_at: torch.Tensor | None = None, **cache_kwargs: Any) -> Any:
        """Logits ``[B, L, V]`` (``[n, V]`` at ``logits_at``, projected only there when the
        network can); with ``cache_kwargs`` (the KV-cache sampler's ``past_key_values`` and the
        like) the network's whole output, which carries the keys/values. Only the logits
        returned, the ones the caller reads, are checked."""
        self.calls += 1
        self.sequences += input_ids.shape[0]
        if cache_kwargs:
            output = network_output(
                self.model, input_ids, logits_at, attention_mask=attention_mask, **cache_kwargs
            )
            self._check_finite(output.logits, input_ids)
            return output
        logits = call_logits(self.model, input_ids, attention_mask, logits_at)
        self._check_finite(logits, input_ids)
        return logits

    def _check_finite(self, logits: torch.Tensor, input_ids: torch.Tensor) -> None:
        if bool(torch.isnan(logits).any()):
            raise FloatingPointError(
                f"the model returned NaN logits (call {self.calls}, input {tuple(input_ids.shape)}): the "
                "weights are damaged or the dtype overflows (float16 does for these models; use "
                "bfloat16 or float32). Requests finished before this one are kept in --use-cache."
            )

    @property
    def device(self) -> torch.device:
        return model_device(self.model)


@dataclass
class RequestStats:
    """Speed figures of one request type on this process."""

    requests: int = 0
    model_calls: int = 0
    wall_s: float = 0.0
    generated_tokens: int = 0
    truncated_contexts: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.generated_tokens:
            out["tokens_per_s"] = self.generated_tokens / self.wall_s if self.wall_s else None
        return out


def pick_device(device: str | None) -> torch.device:
    """The torch device for ``device`` (None: CUDA when present), with a clear error for CUDA."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    chosen = torch.device(device)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for but CUDA is not available on this machine "
            "(torch.cuda.is_available() is False); use --device cpu, or install a CUDA build of torch"
        )
    return chosen


def load_tokenizer(source: Any, checkpoint: Path | None) -> Any:
    """A transformers tokenizer: the object given, a path / hub id, or the checkpoint's own."""
    if source is not None and not isinstance(source, (str, Path)):
        return source
    from transformers import AutoTokenizer

    where = str(source) if source is not None else str(checkpoint)
    if source is None and checkpoint is None:
        raise ValueError("a model passed as an object needs tokenizer=<path, hub id or tokenizer object>")
    try:
        return AutoTokenizer.from_pretrained(where)
    except Exception as error:  # missing files, unknown hub id, broken json: one message for the user
        raise FileNotFoundError(
            f"could not load a tokenizer from '{where}' ({type(error).__name__}: {error}); the "
            "checkpoint directory needs tokenizer files (tokenizer.json / tokenizer_config.json), "
            "or pass tokenizer=<path or hub id>"
        ) from error


@register_model("illada")
class DiffusionLM(TemplateLM):
    """lm-eval backend for iLLaDA, LLaDA and Dream checkpoints (and any masked-diffusion logits callable).

    Args:
        pretrained: checkpoint directory, Hub id or ``"demo"`` (the bundled demo model), or a
            loaded model / logits callable ``model(input_ids, attention_mask)`` (then give
            ``tokenizer`` and, without ``model.config.mask_token_id``, ``mask_id``).
        tokenizer: path, hub id or tokenizer object; default: the checkpoint's own.
        revision, dtype, device: where the weights come from and live (device None: CUDA when
            present, else CPU; under ``accelerate launch`` each process takes its own device).
        batch_size: sequences per model call (ELBO draws, confidence pairs or prompts), or
            ``"auto"``: start at ``max_batch_size`` and halve on out-of-memory, as lm-eval does.
        max_batch_size: the largest batch ``"auto"`` tries.
        max_length: context limit in tokens; default: the config's max_position_embeddings.
        mask_id: mask token id; default ``model.config.mask_token_id``.
        seed: root of every request's own random seed.
        task_settings: ``{task_name: metadata.illada dict}``, as the ``illada-eval`` command
            passes it; tasks not in it use the defaults.
        add_bos_token: force the tokenizer's special tokens on or off (default: its own rule).
        **settings: default likelihood and generation settings, by the names of
            :data:`illada_eval.settings.SCORING` and :data:`~illada_eval.settings.GENERATION`
            (``scoring=confidence``, ``mc_num=64``, ``threshold=0.9``...); a task's
            ``metadata.illada`` and a request's generation_kwargs override them.
    """

    def __init__(
        self,
        pretrained: Any,
        tokenizer: Any = None,
        revision: str | None = None,
        dtype: str | torch.dtype | None = None,
        device: str | None = None,
        batch_size: int | str | None = DEFAULT_BATCH_SIZE,
        max_batch_size: int | None = None,
        max_length: int | None = None,
        mask_id: int | None = None,
        seed: int = 0,
        task_settings: Mapping[str, Mapping[str, Any]] | None = None,
        add_bos_token: bool | None = None,
        **settings: Any,
    ) -> None:
        super().__init__()
        settings = parse_settings(settings, model_arg_names(), "model_args")  # before anything loads
        check_dtype(dtype, "model_args")
        self.scoring = updated(ScoringSettings(), settings, "model_args")
        self.generation = updated(GenerationSettings(), settings, "model_args")
        self.auto_batch = str(batch_size).startswith("auto")
        self.batch_size = (_positive_int(max_batch_size or AUTO_MAX_BATCH_SIZE, "max_batch_size")
                           if self.auto_batch else _positive_int(batch_size, "batch_size"))
        self._device = pick_device(device)
        self.accelerator = self._start_data_parallel(cpu=self._device.type == "cpu")
        if self.accelerator is not None:  # each process on its own device, a share of the requests
            self._device = self.accelerator.device
            self._rank = self.accelerator.process_index
            self._world_size = self.accelerator.num_processes

        pretrained = named_checkpoint(pretrained)
        self.pretrained = pretrained if isinstance(pretrained, (str, Path)) else type(pretrained).__name__
        self.revision = revision
        checkpoint = None
        if isinstance(pretrained, (str, Path)):
            checkpoint = resolve_checkpoint(pretrained, revision)
            network = load_model(checkpoint, dtype=dtype, device=self._device)
        else:
            network = pretrained
        self.network = network
        self._model = CountingModel(network)
        self.tokenizer = load_tokenizer(tokenizer, checkpoint)
        config = getattr(network, "config", None)
        self.mask_id = int(mask_id if mask_id is not None else getattr(config, "mask_token_id", -1))
        if self.mask_id < 0:
            raise ValueError("the model has no config.mask_token_id: pass mask_id=<the mask token's id>")
        self._max_length = int(max_length or getattr(config, "max_position_embeddings", 0) or DEFAULT_MAX_LENGTH)
        self.add_bos_token = add_bos_token
        self.seed = int(seed)
        self.task_settings = {name: dict(value) for name, value in (task_settings or {}).items()}
        self._task_scoring: dict[str | None, ScoringSettings] = {}
        self.eos_ids = self._end_token_ids(config)
        self.stats: dict[str, RequestStats] = {}
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ set-up helpers

    @staticmethod
    def _start_data_parallel(cpu: bool):
        """An accelerate ``Accelerator`` when launched with several processes (``accelerate
        launch`` on GPUs, ``torchrun`` on CPUs, where gloo connects them), else None."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return None
        from datetime import timedelta

        from accelerate import Accelerator, InitProcessGroupKwargs

        # long evaluations leave ranks waiting for each other at the end: a generous timeout
        accelerator = Accelerator(cpu=cpu, kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(weeks=1))])
        return accelerator if accelerator.num_processes > 1 else None

    def _end_token_ids(self, config: Any) -> list[int]:
        """EOS ids of the tokenizer and config, and end-of-turn tokens the vocabulary holds."""
        ids: list[int] = []
        candidates: list[Any] = [self.tokenizer.eos_token_id, getattr(config, "eos_token_id", None)]
        vocab = self.tokenizer.get_vocab()
        candidates += [vocab.get(token) for token in END_OF_TURN_TOKENS]
        for value in candidates:
            for token in value if isinstance(value, (list, tuple)) else [value]:
                if token is not None and int(token) not in ids and int(token) != self.mask_id:
                    ids.append(int(token))
        return ids

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    def _stats(self, request_type: str) -> RequestStats:
        return self.stats.setdefault(request_type, RequestStats())

    def speed_stats(self) -> dict[str, dict[str, Any]]:
        """Per request type: requests, model calls (NFE), wall time, generated tokens, tokens/s."""
        return {name: stats.as_dict() for name, stats in self.stats.items()}

    # ------------------------------------------------------------------ lm-eval properties

    @property
    def model(self) -> Any:
        return self.network

    @property
    def eot_token_id(self) -> int:
        return self.eos_ids[0] if self.eos_ids else self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.eot_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def max_gen_toks(self) -> int:
        return self.generation.gen_length

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "tokenizer")).replace("/", "__")

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor if self.accelerator is None else self.accelerator.gather(tensor)

    def gather_object(self, obj: Any, dst: int = 0) -> list[Any] | None:
        if self.accelerator is None:
            return [obj]
        result = [None] * self.world_size if self.rank == dst else None
        torch.distributed.gather_object(obj=obj, object_gather_list=result, dst=dst)
        return result

    def barrier(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()

    def get_model_info(self) -> dict[str, Any]:
        """What lm-eval records in ``results["config"]``: the model and every adapter setting."""
        parameters = sum(p.numel() for p in self.network.parameters()) if isinstance(self.network, torch.nn.Module) else -1
        dtype = next((p.dtype for p in self.network.parameters()), None) if parameters > 0 else None
        return {
            "model_num_parameters": parameters,
            "model_dtype": str(dtype) if dtype is not None else "",
            "model_revision": self.revision,
            "model_sha": "",
            "illada_adapter": self.settings(),
        }

    def settings(self) -> dict[str, Any]:
        return {
            "pretrained": str(self.pretrained),
            "revision": self.revision,
            "device": str(self.device),
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "mask_id": self.mask_id,
            "eos_ids": self.eos_ids,
            "seed": self.seed,
            "world_size": self.world_size,
            "scoring": asdict(self.scoring),
            "generation": asdict(self.generation),
            "task_settings": self.task_settings,
        }

    # ------------------------------------------------------------------ tokenization

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        special = _add_special_kwargs(add_special_tokens, self.add_bos_token)
        # a chat template may already have written the BOS text: do not add a second one
        bos_text = self.tokenizer.bos_token
        if add_special_tokens is None and bos_text and has_bos_prefix(string, bos_text):
            special["add_special_tokens"] = False
        # verbose=False: no "sequence length is longer than" warning; _fit_context cuts and says so
        return list(self.tokenizer.encode(string, verbose=False, **special))

    def tok_decode(self, tokens: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"the tokenizer of {self.pretrained} has no chat template: run without "
                "apply_chat_template (--chat-template off) or pass a tokenizer that has one"
            )
        return self.tokenizer.apply_chat_template(
            chat_history,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )

    def _encode_request(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-eval's convention (TemplateLM.loglikelihood): trailing context spaces move to the
        continuation; an empty context becomes the prefix (BOS, else EOS) token."""
        if context:
            return self._encode_pair(context, continuation)
        continuation_enc = self.tok_encode(continuation, add_special_tokens=False)
        if continuation_enc and continuation_enc[0] == self.prefix_token_id:
            return continuation_enc[:1], continuation_enc[1:]
        return [self.prefix_token_id], continuation_enc

    def _fit_context(self, context: list[int], room: int, request_type: str) -> list[int]:
        """The context cut from the left to ``room`` tokens, warning once per run."""
        if len(context) <= room:
            return context
        self._stats(request_type).truncated_contexts += 1
        self._warn_once(
            "truncation",
            f"a context of {len(context)} tokens does not fit the model's maximum length "
            f"({self.max_length} tokens with the continuation or generation budget): contexts are "
            "truncated from the left, as lm-eval's hf backend does (counted in the speed figures "
            "as truncated_contexts; this warning is shown once)",
        )
        return context[len(context) - room :] if room > 0 else []

    # ------------------------------------------------------------------ loglikelihood

    def scoring_for(self, task_name: str | None) -> ScoringSettings:
        """The likelihood settings of a task: its ``task_settings`` entry over the defaults."""
        if task_name not in self._task_scoring:
            overrides = self.task_settings.get(task_name or "", {})
            self._task_scoring[task_name] = updated(self.scoring, overrides, f"task {task_name!r}")
        return self._task_scoring[task_name]

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        encoded = []
        for request in requests:
            context, continuation = request.args
            context_enc, continuation_enc = self._encode_request(context, continuation)
            encoded.append(((context, continuation), context_enc, continuation_enc))
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        groups: dict[ScoringSettings, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(self.scoring_for(request.task_name), []).append(index)
        progress = tqdm(total=len(requests), desc="loglikelihood", disable=disable_tqdm or self.rank != 0)
        for settings, indices in groups.items():
            scores = self._loglikelihood_tokens([encoded[i] for i in indices], settings=settings, progress=progress)
            for index, score in zip(indices, scores, strict=True):
                results[index] = score
        progress.close()
        return results  # type: ignore[return-value]

    def _loglikelihood_tokens(
        self,
        requests: list[tuple[tuple[str, str], list[int], list[int]]],
        disable_tqdm: bool = False,
        settings: ScoringSettings | None = None,
        progress: tqdm | None = None,
    ) -> list[tuple[float, bool]]:
        settings = settings or self.scoring
        stats = self._stats("loglikelihood")
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        pairs = []
        for index, (_, context, continuation) in enumerate(requests):
            if not continuation:
                self._warn_once("empty", "an empty continuation scores log-probability 0 (it is certain)")
                results[index] = (0.0, True)
                continue
            if len(continuation) >= self.max_length:
                raise ValueError(
                    f"a continuation of {len(continuation)} tokens does not fit the model's maximum "
                    f"length ({self.max_length}); shorten the task's answers or raise max_length"
                )
            pairs.append((index, self._fit_context(context, self.max_length - len(continuation), "loglikelihood"), continuation))
        # longest first: similar lengths share a call, so little padding
        pairs.sort(key=lambda p: (-len(p[2]), -len(p[1]) - len(p[2]), p[0]))
        for chunk in self._likelihood_chunks(pairs, settings):
            start_calls, start = self._model.calls, time.perf_counter()
            scores = self._fitting_memory(
                lambda part: self._score_pairs([p[1] for p in part], [p[2] for p in part], settings), chunk)
            stats.model_calls += self._model.calls - start_calls
            stats.wall_s += time.perf_counter() - start
            stats.requests += len(chunk)
            for (index, _, _), score in zip(chunk, scores, strict=True):
                results[index] = score
                self.cache_hook.add_partial("loglikelihood", requests[index][0], score)
            if progress is not None:
                progress.update(len(chunk))
        if progress is not None:
            progress.update(len(requests) - len(pairs))
        return results  # type: ignore[return-value]

    def _likelihood_chunks(self, pairs: list, settings: ScoringSettings) -> Iterator[list]:
        """Groups of pairs that fill about one model call each (ELBO: all draws of the group)."""
        chunk, rows = [], 0
        for pair in pairs:
            if settings.scoring == "confidence":
                rows_of_pair = 1
            else:
                rows_of_pair = 1 if len(pair[2]) == 1 else settings.mc_num
            chunk.append(pair)
            rows += rows_of_pair
            if rows >= self.batch_size:
                yield chunk
                chunk, rows = [], 0
        if chunk:
            yield chunk

    def _score_pairs(self, contexts: list[list[int]], continuations: list[list[int]],
                     settings: ScoringSettings) -> list[tuple[float, bool]]:
        common = dict(mask_id=self.mask_id, cfg_scale=settings.cfg_scale, batch_size=self.batch_size,
                      pad_id=self.mask_id)
        greedy = [False] * len(contexts)
        reveal_flags = settings.greedy and settings.greedy_rule == "reveal"
        if settings.scoring == "confidence" or reveal_flags:
            # the reveal rule's flag comes with the confidence score
            confident = confidence_score(self._model, contexts, continuations, return_greedy=True, **common)
            if reveal_flags:
                greedy = [flag for _, flag in confident]
        if settings.greedy and settings.greedy_rule == "llada":
            greedy = llada_is_greedy(self._model, contexts, continuations,
                                     official_numerics=settings.official_numerics, **common)
        if settings.scoring == "confidence":
            scores = [score for score, _ in confident]
        elif settings.scoring == "dream":
            # Dream's harness appends the tokenizer's EOS to the continuation
            scores = dream_loglikelihood(
                self._model, contexts, continuations, mask_id=self.mask_id, eos_id=self.eot_token_id,
                mc_num=settings.mc_num, mc_batch_size=min(settings.mc_batch_size, settings.mc_num),
                seed=self.seed, batch_size=self.batch_size, pad_id=self.mask_id,
            )
        else:
            scores = elbo_loglikelihood(
                self._model, contexts, continuations, mc_num=settings.mc_num,
                mc_batch_size=min(settings.mc_batch_size, settings.mc_num), seed=self.seed,
                official_numerics=settings.official_numerics, **common,
            )
        return [(float(score), bool(flag)) for score, flag in zip(scores, greedy, strict=True)]

    # ------------------------------------------------------------------ rolling loglikelihood

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """The ELBO of each of lm-eval's disjoint rolling windows, summed per document."""
        stats = self._stats("loglikelihood_rolling")
        results = []
        for request in tqdm(requests, desc="loglikelihood_rolling", disable=disable_tqdm or self.rank != 0):
            (text,) = request.args
            settings = self.scoring_for(request.task_name)
            # a window is context + continuation, so it must fit max_length as a whole
            windows = [
                lm_utils.make_disjoint_window(window)
                for window in lm_utils.get_rolling_token_windows(
                    token_list=self.tok_encode(text, add_special_tokens=False),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length - 1,
                    context_len=1,
                )
            ]
            start_calls, start = self._model.calls, time.perf_counter()
            total = 0.0
            if windows:
                total = float(sum(self._fitting_memory(
                    lambda part: elbo_loglikelihood(
                        self._model, [w[0] for w in part], [w[1] for w in part], mask_id=self.mask_id,
                        mc_num=settings.mc_num, mc_batch_size=min(settings.mc_batch_size, settings.mc_num),
                        cfg_scale=settings.cfg_scale, seed=self.seed, batch_size=self.batch_size,
                        pad_id=self.mask_id, official_numerics=settings.official_numerics,
                    ),
                    windows,
                )))
            stats.model_calls += self._model.calls - start_calls
            stats.wall_s += time.perf_counter() - start
            stats.requests += 1
            results.append(total)
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), total)
        return results

    # ------------------------------------------------------------------ generation

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        stats = self._stats("generate_until")
        args = [request.args for request in requests]
        for gen_kwargs in {repr(a[1]): a[1] for a in args}.values():
            self.check_generation(gen_kwargs)
        # identical requests (lm-eval's repeats) get different seeds, so sampling differs
        seen: Counter = Counter()
        occurrence = {}
        for index, (context, gen_kwargs) in enumerate(args):
            key = (context, repr(sorted(gen_kwargs.items())))
            occurrence[index] = seen[key]
            seen[key] += 1
        collator = Collator(
            list(enumerate(args)),
            sort_fn=lambda item: (-len(self.tok_encode(item[1][0])), item[1][0]),
            group_fn=lambda item: item[1][1],
            group_by="gen_kwargs",
        )
        outputs = []
        progress = tqdm(total=len(requests), desc="generate_until", disable=disable_tqdm or self.rank != 0)
        for chunk in collator.get_batched(n=self.batch_size):
            indices = [index for index, _ in chunk]
            contexts = [context for _, (context, _) in chunk]
            gen_kwargs = chunk[0][1][1]
            start_calls, start = self._model.calls, time.perf_counter()
            texts = self._fitting_memory(
                lambda part: self._generate_batch([c for c, _ in part], gen_kwargs, [k for _, k in part]),
                [(context, occurrence[i]) for context, i in zip(contexts, indices, strict=True)],
            )
            texts, generated = [text for text, _ in texts], sum(count for _, count in texts)
            stats.model_calls += self._model.calls - start_calls
            stats.wall_s += time.perf_counter() - start
            stats.requests += len(chunk)
            stats.generated_tokens += generated
            for context, text in zip(contexts, texts, strict=True):
                self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            outputs.extend(texts)
            progress.update(len(chunk))
        progress.close()
        return collator.get_original(outputs)

    def generation_settings_for(self, gen_kwargs: Mapping[str, Any]) -> tuple[GenerationSettings, list[str], int]:
        """The settings, stop strings and token budget of one request's generation_kwargs."""
        kwargs = dict(normalize_gen_kwargs(dict(gen_kwargs), self.generation.gen_length))
        task_until = kwargs.pop("until", None)
        max_gen_toks = int(kwargs.pop("max_gen_toks"))
        do_sample = bool(kwargs.pop("do_sample", False))
        temperature = float(kwargs.pop("temperature", 0.0))
        if "do_sample" in gen_kwargs or "temperature" in gen_kwargs:  # the task decides
            kwargs["temperature"] = temperature if do_sample else 0.0
        known = {f.name for f in fields(GenerationSettings)} - {"gen_length"}
        ignored = sorted(set(kwargs) - known)
        if ignored:
            self._warn_once(f"ignored:{ignored}", f"generation_kwargs {ignored} have no meaning for diffusion sampling and are ignored")
        overrides = {key: kwargs[key] for key in known if kwargs.get(key) is not None}
        settings = updated(self.generation, overrides, "generation_kwargs")
        # lm-eval adds the EOS text to the stop strings; LLaDA's evaluation cuts at the task's own only
        eos_text = self.tok_decode([self.eot_token_id], skip_special_tokens=False)
        until = handle_stop_sequences(task_until, eos=None if settings.keep_text_after_eos else eos_text)
        return settings, until, max_gen_toks

    def check_generation(self, gen_kwargs: Mapping[str, Any]) -> int:
        """Room left for the prompt under these generation_kwargs; a clear error when none is.

        ``generate_until`` checks all its requests before it computes any; the CLI checks every
        task before the run starts, so a bad budget never costs finished work.
        """
        settings, _, max_gen_toks = self.generation_settings_for(gen_kwargs)
        gen_length = settings.plan(max_gen_toks)[0]
        room = self.max_length - gen_length
        if room < 1:
            raise ValueError(
                f"a generation budget of {gen_length} tokens (max_gen_toks {max_gen_toks}) leaves no "
                f"room for the prompt within the model's maximum length ({self.max_length}): lower "
                "max_gen_toks (e.g. --gen-kwargs max_gen_toks=N) or use a model with a longer context"
            )
        return room

    def _generate_batch(self, contexts: list[str], gen_kwargs: Mapping[str, Any],
                        occurrences: list[int]) -> list[tuple[str, int]]:
        """``(text, generated token count)`` per context."""
        settings, until, max_gen_toks = self.generation_settings_for(gen_kwargs)
        gen_length, block_length, steps = settings.plan(max_gen_toks)
        room = self.max_length - gen_length
        prompts = [self._fit_context(self.tok_encode(c), room, "generate_until") for c in contexts]
        stops = [tokens for s in until if (tokens := self.tok_encode(s, add_special_tokens=False))]
        seeds = [derive_seed(self.seed, prompt, [k]) for prompt, k in zip(prompts, occurrences, strict=True)]
        if settings.remasking in DREAM_ALGS:  # Dream's sampler: the whole budget as one canvas
            output = dream_generate(
                self._model, prompts, mask_id=self.mask_id, max_new_tokens=max_gen_toks,
                steps=settings.steps or max_gen_toks, alg=settings.remasking, alg_temp=settings.alg_temp,
                temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k,
                eos_id=self.eos_ids, stop=stops or None, seed=seeds, pad_id=self.mask_id,
            )
        else:
            output = generate(
                self._model, prompts, mask_id=self.mask_id, gen_length=gen_length,
                block_length=block_length, steps=steps, temperature=settings.temperature,
                remasking=settings.remasking, cfg_scale=settings.cfg_scale, eos_id=self.eos_ids,
                variable_length=settings.variable_length,
                logits_eos_inf=settings.logits_eos_inf, confidence_eos_eot_inf=settings.confidence_eos_eot_inf,
                official_numerics=settings.official_numerics, keep_text_after_eos=settings.keep_text_after_eos,
                stop=stops or None, seed=seeds,
                threshold=settings.threshold, pad_id=self.mask_id, kv_cache=settings.kv_cache,
            )
        texts = []
        for tokens in output.tokens:
            tokens = tokens[:max_gen_toks]
            if settings.keep_text_after_eos:
                texts.append(self._text_after_eos(tokens, until))
            else:
                texts.append((postprocess_generated_text(self.tok_decode(tokens), stop=until, think_end_token=None),
                              len(tokens)))
        return texts

    def _text_after_eos(self, tokens: list[int], until: list[str]) -> tuple[str, int]:
        """``(text, its token count)`` as LLaDA's evaluation makes it (eval_llada.py): the output
        decoded with its special tokens, cut at the stop strings, then encoded and decoded again
        without special tokens, so what the model wrote after an EOS stays and the EOS goes."""
        text = postprocess_generated_text(self.tok_decode(tokens, skip_special_tokens=False), stop=until,
                                          think_end_token=None)
        text = self.tok_decode(self.tokenizer(text)["input_ids"])
        return text, len(self.tok_encode(text, add_special_tokens=False))

    def _fitting_memory(self, run: Callable[[list], list], items: list) -> list:
        """``run(items)``, one result per item. With ``batch_size="auto"`` an out-of-memory error
        halves the batch size and runs the items again in pieces of at most that size (a failed
        call kept nothing), down to batch size 1."""
        try:
            return run(items)
        except torch.OutOfMemoryError:
            if not self.auto_batch or self.batch_size == 1:
                raise
        # outside the except block, so the failed call's tensors are freed first
        self.batch_size //= 2
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        log.warning("out of memory: batch_size auto lowered the batch size to %d", self.batch_size)
        pieces = [items[i:i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        return [result for piece in pieces for result in self._fitting_memory(run, piece)]


def named_checkpoint(pretrained: Any) -> Any:
    """``pretrained`` with the name ``"demo"`` replaced by the demo model's folder."""
    return DEMO_MODEL_DIR if isinstance(pretrained, str) and pretrained == DEMO_MODEL_NAME else pretrained


def model_arg_names() -> tuple[str, ...]:
    """Every ``model_args`` key the backend takes: its own arguments and the settings."""
    import inspect

    own = [name for name, p in inspect.signature(DiffusionLM.__init__).parameters.items()
           if name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
    return (*own, *BY_NAME)


def _positive_int(value: Any, name: str) -> int:
    try:
        number = int(value if value is not None else 1)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive integer or 'auto', got {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number
