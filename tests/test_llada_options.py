"""LLaDA's sampler options, against a plain transcription of LLaDA's generate: EOS never
proposed (``logits_eos_inf``), EOS / end-of-turn with confidence 0 (``confidence_eos_eot_inf``)
and confidences in the model's own dtype (``official_numerics``), ties included; and LLaDA's
evaluation text (``keep_text_after_eos``) against a transcription of eval_llada.py's."""
from __future__ import annotations

import json

import lm_eval
import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager

from illada_eval.adapter import DiffusionLM
from illada_eval.model import generate
from illada_eval.model.sampler import transfer_schedule

from lm_eval_fixtures import EOS_ID, CopyToy, char_tokenizer, one_torch_thread  # noqa: F401  (fixture)
from tiny import tiny_model
from toy_models import TableToy

MASK, EOS, EOT, V = 9, 0, 8, 10


def llada_generate(model, prompt, *, gen_length, block_length, steps, eos, eot, mask,
                   logits_eos_inf=False, confidence_eos_eot_inf=False):
    """LLaDA's generate (temperature 0, low-confidence remasking) written out plainly for one
    prompt, in the dtype the model returns; returns the canvas after the prompt and, per step,
    the positions revealed in the order torch.topk gives them."""
    x = torch.tensor([list(prompt) + [mask] * gen_length])
    num_blocks = gen_length // block_length
    order = []
    for block in range(num_blocks):
        end = len(prompt) + (block + 1) * block_length
        for count in transfer_schedule(block_length, steps // num_blocks):
            mask_index = x == mask
            logits = model(x, None)
            logits = getattr(logits, "logits", logits).clone()
            if logits_eos_inf:
                logits[:, :, eos] = -torch.inf
            x0 = torch.argmax(logits, dim=-1)
            if confidence_eos_eot_inf:
                logits[:, :, eos] = logits[:, :, eot] = -torch.inf
            p = torch.softmax(logits, dim=-1)
            x0_p = torch.gather(p, dim=-1, index=x0[..., None])[..., 0]
            x0_p[:, end:] = -torch.inf
            confidence = torch.where(mask_index, x0_p, -torch.inf)
            chosen = torch.topk(confidence[0], k=count).indices
            x[0, chosen] = x0[0, chosen]
            order.append(sorted((chosen - len(prompt)).tolist()))
    return x[0, len(prompt):].tolist(), order


def logit_row(**logits: float) -> list[float]:
    """A logit vector: 0 everywhere, the given tokens' logits (t3=2.0 sets token 3), mask -1e4."""
    row = [0.0] * V
    for name, value in logits.items():
        row[int(name[1:])] = value
    row[MASK] = -1.0e4
    return row


# prompt position, then 6 generated positions in 2 blocks of 3
TABLE = [
    logit_row(t1=3.0),
    logit_row(t3=2.0, t0=1.9),  # content whose runner-up is EOS: leaving EOS out raises its confidence
    logit_row(t4=1.6),  # content with a spread runner-up mass: more confident than the above, unless EOS is left out
    logit_row(t0=5.0, t5=1.0),  # EOS proposed
    logit_row(t8=4.0, t6=1.0),  # end of turn proposed
    logit_row(t0=4.5, t7=1.0),  # EOS proposed: ties at 0 with the end of turn above
    logit_row(t2=1.0),
]


@pytest.mark.parametrize("logits_eos_inf", [False, True])
@pytest.mark.parametrize("confidence_eos_eot_inf", [False, True])
def test_eos_options_reveal_in_llada_order_ties_included(logits_eos_inf, confidence_eos_eot_inf):
    settings = dict(gen_length=6, block_length=3, steps=6)
    expected, expected_order = llada_generate(
        TableToy(TABLE, MASK), [1], eos=EOS, eot=EOT, mask=MASK, logits_eos_inf=logits_eos_inf,
        confidence_eos_eot_inf=confidence_eos_eot_inf, **settings)
    model = TableToy(TABLE, MASK, record=True)
    out = generate(model, [[1]], mask_id=MASK, eos_id=(EOS, EOT), logits_eos_inf=logits_eos_inf,
                   confidence_eos_eot_inf=confidence_eos_eot_inf, stop_early=False, **settings)
    canvases = [ids[0, 1:] for ids, _ in model.inputs] + [torch.tensor(expected)]
    order = [((before == MASK) & (after != MASK)).nonzero()[:, 0].tolist()
             for before, after in zip(canvases, canvases[1:])]
    assert order == expected_order, f"reveal order {order}, LLaDA's {expected_order}"
    cut = next((i for i, t in enumerate(expected) if t in (EOS, EOT)), len(expected))
    assert out.tokens == [expected[:cut]]
    if logits_eos_inf:
        assert EOS not in expected  # never proposed
    if confidence_eos_eot_inf and not logits_eos_inf:
        assert expected_order[:3] == [[0], [1], [2]]  # content first, EOS last in its block
        assert expected_order[3] == [5]  # the content before the two zero-confidence ties


def test_leaving_eos_out_of_the_softmax_reorders_content_as_llada_does():
    """Position 0's runner-up is EOS: with EOS at probability 0 its confidence beats position 1's."""
    _, order = llada_generate(TableToy(TABLE, MASK), [1], gen_length=6, block_length=3, steps=6, eos=EOS,
                              eot=EOT, mask=MASK, confidence_eos_eot_inf=True)
    _, plain = llada_generate(TableToy(TABLE, MASK), [1], gen_length=6, block_length=3, steps=6, eos=EOS,
                              eot=EOT, mask=MASK)
    assert order[:2] == [[0], [1]] and plain[:3] == [[2], [1], [0]]


def test_official_numerics_in_bfloat16_follow_llada_on_a_tiny_network():
    """On a bf16 network LLaDA's softmax is taken in bf16, whose rounding makes ties; with
    official numerics the tokens equal the transcription's, prompt by prompt."""
    network = tiny_model(seed=1).to(torch.bfloat16)
    mask, eos, eot = network.config.mask_token_id, 1, 2

    def model(input_ids, attention_mask=None):
        # an untrained network may rank the mask token first; LLaDA's code would propose it, ours
        # never does: rule it out so that both meet the same proposals
        logits = network(input_ids, attention_mask=attention_mask).logits
        return logits.index_fill(-1, torch.tensor([mask]), -torch.inf)

    generator = torch.Generator().manual_seed(0)
    prompts = [torch.randint(6, network.config.vocab_size, (int(n),), generator=generator).tolist()
               for n in torch.randint(1, 8, (20,), generator=generator)]
    settings = dict(gen_length=16, block_length=4, steps=16)
    differ = 0
    for prompt in prompts:
        expected, _ = llada_generate(model, prompt, eos=eos, eot=eot, mask=mask, **settings)
        official = generate(model, [prompt], mask_id=mask, official_numerics=True, stop_early=False, **settings)
        assert official.tokens == [expected], f"prompt {prompt}: {official.tokens[0]} vs LLaDA's {expected}"
        plain = generate(model, [prompt], mask_id=mask, stop_early=False, **settings)
        differ += plain.tokens != [expected]
    assert differ > 0, "float64 confidences gave LLaDA's bf16 tokens on every prompt: the test shows nothing"


def eval_llada_text(tokenizer, generated: list[int], until: list[str]) -> str:
    """The text eval_llada.py's generate_until makes of a generated canvas, written out: decoded
    with special tokens, cut at each stop string of the task's until, then encoded and decoded
    again without special tokens."""
    text = tokenizer.decode(generated, skip_special_tokens=False)
    for stop in until:
        if stop in text:
            text = text.split(stop)[0]
    ids = tokenizer(text)["input_ids"]
    return tokenizer.decode(ids, skip_special_tokens=True)


GEN_LENGTH = 16
# what CopyToy writes (the characters between "#" and "=", then EOS to the end of the canvas), the
# task's until, the text LLaDA's evaluation makes of it and the text our default makes
AFTER_EOS = [
    ("12<eos>34\n56", ["\n"], "1234", "12"),  # a stop string after the EOS
    ("1\n2<eos>34", ["\n"], "1", "1"),  # a stop string before it
    ("12<eos>34<eot>56", ["<eot>"], "1234", "12"),  # the end-of-turn text as a stop string
    ("12<eos>34<eos>5", [], "12345", "12"),  # no stop string (LLaDA-Instruct's OpenCompass)
]


def canvas_of(tokenizer, source: str) -> list[int]:
    written = tokenizer.encode(source)
    return written + [EOS_ID] * (GEN_LENGTH - len(written))


@pytest.mark.parametrize("block_length", [4, GEN_LENGTH])
@pytest.mark.parametrize(("source", "until", "llada", "cut"), AFTER_EOS)
def test_text_after_eos_is_eval_lladas_and_the_default_cuts_at_the_first_eos(source, until, llada, cut, block_length):
    tokenizer = char_tokenizer()
    assert eval_llada_text(tokenizer, canvas_of(tokenizer, source), until) == llada
    if not until:  # OpenCompass decodes the whole canvas without special tokens: the same text
        assert tokenizer.decode(canvas_of(tokenizer, source), skip_special_tokens=True) == llada

    gen_kwargs = dict(until=until, max_gen_toks=GEN_LENGTH, block_length=block_length, steps=GEN_LENGTH,
                      variable_length=False)
    lm = DiffusionLM(pretrained=CopyToy(tokenizer), tokenizer=tokenizer)
    assert lm.eos_ids == [EOS_ID, tokenizer.convert_tokens_to_ids("<eot>")]

    def text(**settings):
        request = Instance("generate_until", doc={}, arguments=(f"copy #{source}=", gen_kwargs | settings), idx=0)
        return lm.generate_until([request])[0]

    assert text(keep_text_after_eos=True) == llada
    # the speed figures count the tokens of the text the task receives
    assert lm.speed_stats()["generate_until"]["generated_tokens"] == len(tokenizer.encode(llada))
    assert text() == cut


def test_text_after_eos_through_lm_eval_with_the_tasks_until(tmp_path):
    """A task's generation_kwargs select the setting; lm-eval passes the task's until."""
    tokenizer = char_tokenizer()
    docs = [{"question": f"copy #{source}", "answer": llada} for source, _, llada, _ in AFTER_EOS[:2]]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    task = {
        "task": "toy_after_eos", "dataset_path": "json", "test_split": "train", "num_fewshot": 0,
        "dataset_kwargs": {"data_files": str(tmp_path / "docs.jsonl")},
        "output_type": "generate_until", "doc_to_text": "{{question}}=", "doc_to_target": "{{answer}}",
        "generation_kwargs": {"until": ["\n"], "max_gen_toks": GEN_LENGTH, "block_length": 4, "steps": GEN_LENGTH,
                              "variable_length": False, "keep_text_after_eos": True, "do_sample": False},
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }
    (tmp_path / "toy_after_eos.yaml").write_text(json.dumps(task))

    def run(**overrides):
        results = lm_eval.simple_evaluate(
            model=DiffusionLM(pretrained=CopyToy(tokenizer), tokenizer=tokenizer), tasks=["toy_after_eos"],
            task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False), log_samples=True,
            bootstrap_iters=0, gen_kwargs=overrides or None)
        return results["results"]["toy_after_eos"]["exact_match,none"], results["samples"]["toy_after_eos"]

    score, samples = run()
    for sample in samples:
        context, gen_kwargs = sample["arguments"][0]
        assert gen_kwargs["until"] == ["\n"]  # the task's own, no EOS text added
        source = context.removeprefix("copy #").removesuffix("=")
        assert sample["resps"][0][0] == eval_llada_text(tokenizer, canvas_of(tokenizer, source), gen_kwargs["until"])
    assert score == 1.0
    score, samples = run(keep_text_after_eos=False)
    assert [s["resps"][0][0] for s in samples] == [cut for _, _, _, cut in AFTER_EOS[:2]] and score == 0.5
