"""LLaDA's sampler options, against a plain transcription of LLaDA's generate: EOS never
proposed (``logits_eos_inf``), EOS / end-of-turn with confidence 0 (``confidence_eos_eot_inf``)
and confidences in the model's own dtype (``official_numerics``), ties included."""
from __future__ import annotations

import pytest
import torch

from illada_eval.model import generate
from illada_eval.model.sampler import transfer_schedule

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
