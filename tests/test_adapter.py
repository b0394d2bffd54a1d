"""The ``illada`` lm-eval backend, end to end through ``lm_eval.simple_evaluate``.

Exact answers come from :class:`CopyToy` (scores known in closed form); the tiny random network
loaded from a checkpoint directory checks the invariances (batch size, seed, resume).
"""
import logging
import math
from pathlib import Path

import lm_eval
import pytest
from lm_eval.api.instance import Instance
from lm_eval.api.registry import get_model
from lm_eval.tasks import TaskManager

import torch

from illada_eval.adapter import DEMO_MODEL_DIR, DiffusionLM
from lm_eval_fixtures import checkpoint, one_torch_thread, tasks_dir  # noqa: F401  (fixtures)
from lm_eval_fixtures import (
    COPY_DOCS,
    TEXT_DOCS,
    VOCAB,
    CopyToy,
    char_tokenizer,
    copy_score,
)

ALL_TASKS = ["toy_mc", "toy_ll", "toy_gen", "toy_ppl"]


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


def evaluate(lm, tasks_dir, tasks=ALL_TASKS, **kwargs):
    kwargs.setdefault("bootstrap_iters", 0)
    manager = TaskManager(include_path=str(tasks_dir), include_defaults=False)
    return lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, log_samples=True, **kwargs)


def toy_lm(tokenizer, toy=None, **model_args):
    toy = toy or CopyToy(tokenizer)
    return DiffusionLM(pretrained=toy, tokenizer=tokenizer, **model_args)


def responses(results, task):
    """doc_id -> the model's raw responses, for comparing runs."""
    return {s["doc_id"]: s["resps"] for s in results["samples"][task]}


def test_illada_is_registered_and_lm_eval_backends_still_resolve():
    assert get_model("illada") is DiffusionLM
    assert get_model("hf").__name__ == "HFLM"


@pytest.mark.parametrize("scoring", ["confidence", "elbo"])
def test_every_request_type_end_to_end_with_exact_scores(scoring, tokenizer, tasks_dir):
    # confidence comes from the task settings map (as the CLI passes it), ELBO from the
    # model_args defaults (bare simple_evaluate use)
    settings = {"toy_mc": {"scoring": "confidence"}} if scoring == "confidence" else None
    lm = toy_lm(tokenizer, batch_size=3, max_length=20, scoring="elbo", mc_num=4, task_settings=settings)
    results = evaluate(lm, tasks_dir)

    assert results["results"]["toy_mc"]["acc,none"] == pytest.approx(0.75)
    checked = 0
    for sample in results["samples"]["toy_mc"]:
        source, choices, _ = COPY_DOCS[sample["doc_id"]]
        for choice, resp in zip(choices, sample["resps"]):
            # confidence scoring is exact; a Monte Carlo ELBO estimate only where every token of the
            # choice has the same log-probability (all copied or none)
            hits = {k < len(source) and c == source[k] for k, c in enumerate(choice)}
            if scoring == "confidence" or len(hits) == 1:
                assert resp[0][0] == pytest.approx(copy_score(choice, source), abs=1e-4)
                checked += 1
    assert checked >= 7

    # loglikelihood task: acc is lm-eval's greedy flag, false only where the answer is not the copy
    assert results["results"]["toy_ll"]["acc,none"] == pytest.approx(0.75)
    # generation copies the source; the gold answer differs from it in one document
    assert [s["resps"][0][0] for s in results["samples"]["toy_gen"]] == [d[0] for d in COPY_DOCS]
    assert results["results"]["toy_gen"]["exact_match,none"] == pytest.approx(0.75)
    # rolling windows (max_length 20 cuts every text into several) score every token exactly once
    for sample in results["samples"]["toy_ppl"]:
        length = len(tokenizer.encode(TEXT_DOCS[sample["doc_id"]]))
        assert length > 20
        assert sample["resps"][0][0] == pytest.approx(-length * math.log(VOCAB), abs=1e-3)

    speed = lm.speed_stats()
    assert speed["loglikelihood"]["requests"] == sum(len(d[1]) for d in COPY_DOCS) + len(COPY_DOCS)
    assert speed["generate_until"]["generated_tokens"] == sum(len(d[0]) for d in COPY_DOCS)
    assert all(figures["model_calls"] > 0 for figures in speed.values())


def test_chat_template_is_applied_to_prompts(tokenizer, tasks_dir):
    lm = toy_lm(tokenizer)
    results = evaluate(lm, tasks_dir, tasks=["toy_gen"], apply_chat_template=True)
    prompt = results["samples"]["toy_gen"][0]["arguments"][0][0]
    assert prompt == "<|user|>copy #42=<eot><|assistant|>"


def generation_request(context, **gen_kwargs):
    gen_kwargs.setdefault("until", ["\n"])
    return Instance("generate_until", doc={}, arguments=(context, gen_kwargs), idx=0, metadata=("t", 0, 1))


def test_generation_honours_until_budget_and_variable_length(tokenizer):
    toy = CopyToy(tokenizer)
    lm = toy_lm(tokenizer, toy=toy, block_length=2)
    cut = lm.generate_until([
        generation_request("copy #13579=", until=["7"], max_gen_toks=8),
        generation_request("copy #13579=", max_gen_toks=3),
        generation_request("copy #13579=", max_gen_toks=3, block_length=8),  # block beyond the budget
    ])
    assert cut == ["135", "135", "135"]

    for variable in (False, True):
        toy.calls = 0
        texts = lm.generate_until([generation_request("copy #42=", max_gen_toks=16, variable_length=variable)])
        assert texts == ["42"]
        # blocks of 2 with 2 steps each: "42", then the block holding EOS ends it (16 calls in all)
        assert toy.calls == 4

    sampled = [generation_request("copy #42=", max_gen_toks=4, do_sample=True, temperature=1.0)] * 2
    assert lm.generate_until(sampled) == toy_lm(tokenizer).generate_until(sampled)  # seeded

    # model_args temperature applies where the task says nothing about sampling
    hot = toy_lm(tokenizer, temperature=1000.0)
    assert hot.generate_until([generation_request("copy #42=", max_gen_toks=4)]) != ["42"]
    assert hot.generate_until([generation_request("copy #42=", max_gen_toks=4, do_sample=False)]) == ["42"]


def test_a_budget_beyond_the_context_fails_before_any_request_runs(tokenizer):
    toy = CopyToy(tokenizer, max_length=16)
    lm = toy_lm(tokenizer, toy=toy)
    with pytest.raises(ValueError, match="max_gen_toks 16.*maximum length \\(16\\)"):
        lm.generate_until([generation_request("copy #1=", max_gen_toks=4), generation_request("x", max_gen_toks=16)])
    assert toy.calls == 0


def loglikelihood_requests(pairs, task="t"):
    return [Instance("loglikelihood", doc={}, arguments=pair, idx=i, metadata=(task, i, 1)) for i, pair in enumerate(pairs)]


def test_long_contexts_are_truncated_from_the_left_with_one_warning(caplog):
    tokenizer = char_tokenizer()
    tokenizer.model_max_length = 8  # transformers would warn about every longer text: not here
    lm = toy_lm(tokenizer, max_length=8, scoring="confidence")
    pairs = [("a long context #42=", "42"), ("another long one #7=", "7"), ("#1=", "1")]
    with caplog.at_level(logging.WARNING):
        scores = lm.loglikelihood(loglikelihood_requests(pairs))
    assert [r.getMessage()[:40] for r in caplog.records if r.levelno >= logging.WARNING] == [
        "a context of 19 tokens does not fit the "]
    assert lm.speed_stats()["loglikelihood"]["truncated_contexts"] == 2
    # the right end of the context survives, so the toy still finds what to copy
    assert [s for s, _ in scores] == pytest.approx([copy_score(c, c) for _, c in pairs], abs=1e-4)


def test_lm_eval_whitespace_and_empty_context_conventions(tokenizer):
    lm = toy_lm(tokenizer)
    # trailing context spaces move to the continuation, as lm-eval's hf backend does
    assert lm._encode_request("Answer: ", "yes") == (tokenizer.encode("Answer:"), tokenizer.encode(" yes"))
    # an empty context becomes the BOS token
    assert lm._encode_request("", "yes") == ([tokenizer.bos_token_id], tokenizer.encode("yes"))


class NaNToy(CopyToy):
    def __call__(self, input_ids, attention_mask=None):
        return super().__call__(input_ids, attention_mask) * float("nan")


def test_nan_logits_stop_the_run_with_a_clear_message(tokenizer):
    lm = toy_lm(tokenizer, toy=NaNToy(tokenizer))
    with pytest.raises(FloatingPointError, match="NaN logits.*bfloat16"):
        lm.loglikelihood(loglikelihood_requests([("#1=", "1")]))


def test_bad_requests_and_settings_give_clear_errors(tokenizer):
    lm = toy_lm(tokenizer, max_length=8)
    assert lm.loglikelihood(loglikelihood_requests([("#4=", "")])) == [(0.0, True)]
    with pytest.raises(ValueError, match="does not fit the model's maximum length"):
        lm.loglikelihood(loglikelihood_requests([("x", "123456789")]))
    with pytest.raises(ValueError, match="scoring must be one of"):
        toy_lm(tokenizer, scoring="ppl")
    with pytest.raises(ValueError, match="batch_size must be a positive integer or 'auto', got 'many'"):
        toy_lm(tokenizer, batch_size="many")
    with pytest.raises(ValueError, match="unknown key 'treshold' \\(did you mean 'threshold'\\?\\)"):
        toy_lm(tokenizer, treshold=0.9)
    with pytest.raises(ValueError, match="unknown dtype 'float13' \\(did you mean 'float32' or 'float16'\\?\\)"):
        toy_lm(tokenizer, dtype="float13")
    with pytest.raises(ValueError, match="mc_num \\(10\\) must be a multiple of mc_batch_size \\(4\\)"):
        toy_lm(tokenizer, mc_num=10, mc_batch_size=4)
    with pytest.raises(ValueError, match="task 'odd'.*scoring"):
        toy_lm(tokenizer, task_settings={"odd": {"scoring": "nope"}}).scoring_for("odd")
    with pytest.raises(FileNotFoundError, match="no/such/checkpoint"):
        DiffusionLM(pretrained="./no/such/checkpoint")
    # settings that do not go together fail before the checkpoint is looked for
    with pytest.raises(ValueError, match="model_args: keep_text_after_eos .* set variable_length=false"):
        DiffusionLM(pretrained="./no/such/checkpoint", keep_text_after_eos=True)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="CUDA is not available"):
        toy_lm(tokenizer, device="cuda")


def test_metrics_do_not_depend_on_batch_size(checkpoint, tasks_dir):
    runs = []
    for batch_size in (1, 5):
        lm = get_model("illada").create_from_arg_string(
            f"pretrained={checkpoint},scoring=elbo,mc_num=4,mc_batch_size=2,batch_size={batch_size}"
        )
        runs.append(evaluate(lm, tasks_dir))
    one, five = runs
    for task in ALL_TASKS:
        assert one["results"][task] == pytest.approx(five["results"][task], abs=1e-5)
        first, second = responses(one, task), responses(five, task)
        for doc_id, resps in first.items():
            for a, b in zip(resps, second[doc_id]):
                if isinstance(a[0], str):
                    assert a == b
                else:
                    assert a[0] == pytest.approx(b[0], abs=1e-4)


def test_kv_cache_setting_reaches_the_sampler_through_the_counting_wrapper(checkpoint):
    requests = [generation_request(c, max_gen_toks=8, block_length=4) for c in ("copy #12=", "x")]
    for mode in ("prefix", "dual"):
        # one step per block: every call is a block's full first pass, so the cache changes nothing
        one_step = DiffusionLM(pretrained=str(checkpoint), kv_cache=mode, steps_per_block=1)
        assert one_step.generate_until(requests) == DiffusionLM(pretrained=str(checkpoint), steps_per_block=1).generate_until(requests)
    cached = DiffusionLM(pretrained=str(checkpoint), kv_cache="dual")
    widths = []
    cached.network.register_forward_pre_hook(lambda module, args: widths.append(args[0].shape[1]))
    cached.generate_until(requests)
    assert 4 in widths and max(widths) > 4  # later steps ran the block of 4 alone
    with pytest.raises(ValueError, match="kv_cache must be one of"):
        DiffusionLM(pretrained=str(checkpoint), kv_cache="everything")


def test_same_seed_same_scores_other_seed_other_draws(checkpoint):
    pairs = [("copy #1234=", "1234"), ("x", "hello world")]

    def scores(seed):
        lm = DiffusionLM(pretrained=str(checkpoint), scoring="elbo", mc_num=2, mc_batch_size=2, seed=seed)
        return [s for s, _ in lm.loglikelihood(loglikelihood_requests(pairs))]

    assert scores(0) == scores(0)
    assert scores(0) != scores(1)  # the Monte Carlo draws follow the seed


class CrashingToy(CopyToy):
    """Dies like a killed process after a number of model calls."""

    def __init__(self, tokenizer, calls_before_crash):
        super().__init__(tokenizer)
        self.budget = calls_before_crash

    def __call__(self, input_ids, attention_mask=None):
        if self.calls >= self.budget:
            raise KeyboardInterrupt("simulated kill")
        return super().__call__(input_ids, attention_mask)


def test_request_cache_resumes_without_recomputing_finished_requests(tokenizer, tasks_dir, tmp_path):
    cache = str(tmp_path / "cache")
    total = sum(len(d[1]) for d in COPY_DOCS)
    with pytest.raises(KeyboardInterrupt):
        evaluate(toy_lm(tokenizer, toy=CrashingToy(tokenizer, 3), scoring="confidence"), tasks_dir,
                 tasks=["toy_mc"], use_cache=cache)
    from sqlitedict import SqliteDict

    with SqliteDict(cache + "_rank0.db") as db:
        finished = len(db)
    assert 0 < finished < total

    resumed = toy_lm(tokenizer, scoring="confidence")
    results = evaluate(resumed, tasks_dir, tasks=["toy_mc"], use_cache=cache)
    assert resumed.speed_stats()["loglikelihood"]["requests"] == total - finished
    assert results["results"]["toy_mc"]["acc,none"] == pytest.approx(0.75)

    again = toy_lm(tokenizer, scoring="confidence")
    evaluate(again, tasks_dir, tasks=["toy_mc"], use_cache=cache)
    assert again.speed_stats() == {}  # everything came from the cache


class SmallMemoryToy(CopyToy):
    """CopyToy on a device that runs out of memory above ``fits`` rows per call."""

    def __init__(self, tokenizer, fits):
        super().__init__(tokenizer)
        self.fits, self.widths = fits, []

    def __call__(self, input_ids, attention_mask=None):
        self.widths.append(input_ids.shape[0])
        if input_ids.shape[0] > self.fits:
            raise torch.OutOfMemoryError(f"{input_ids.shape[0]} rows do not fit")
        return super().__call__(input_ids, attention_mask)


def test_batch_size_auto_halves_on_out_of_memory_until_the_batch_fits(tokenizer, tasks_dir):
    """lm-eval's ``auto``: start at max_batch_size, halve on out-of-memory; the scores are those
    of a run that fit from the start (a failed call keeps nothing)."""
    toy = SmallMemoryToy(tokenizer, fits=3)
    lm = toy_lm(tokenizer, toy=toy, batch_size="auto", max_batch_size=16, scoring="elbo", mc_num=4)
    reference = toy_lm(tokenizer, batch_size=2, scoring="elbo", mc_num=4)
    auto, fixed = (evaluate(model, tasks_dir, tasks=["toy_ll", "toy_gen", "toy_ppl"]) for model in (lm, reference))
    assert lm.batch_size == 2, f"16 -> 8 -> 4 -> 2 rows fit under 3, got {lm.batch_size}"
    assert max(toy.widths) > 3, "auto started above what fits"
    for task in ("toy_ll", "toy_gen", "toy_ppl"):
        assert responses(auto, task) == responses(fixed, task), task
    with pytest.raises(torch.OutOfMemoryError):  # a fixed batch size is the user's choice: no retry
        toy_lm(tokenizer, toy=SmallMemoryToy(tokenizer, fits=1), batch_size=4).loglikelihood(
            loglikelihood_requests([("#12=", "12"), ("#3=", "3")]))


def test_demo_is_a_name_for_the_bundled_model():
    lm = DiffusionLM(pretrained="demo", device="cpu")
    assert Path(lm.pretrained) == DEMO_MODEL_DIR and lm.mask_id >= 0
