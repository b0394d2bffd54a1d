"""Masking and the training losses of masked diffusion, checked on toy models with known answers."""
from types import SimpleNamespace

import pytest
import torch

from illada_eval.model import call_logits
from illada_eval.model.likelihood import elbo_loglikelihood
from illada_eval.model.losses import pretrain_loss, sft_loss, variable_length_sft_loss
from illada_eval.model.masking import forward_mask

from toy_models import ContextToy, enumerated_elbo

MASK = 9


def _token_logprobs(model, noisy, attention_mask=None):
    logits = model(noisy, attention_mask)
    return torch.log_softmax(logits.double(), dim=-1)


def test_forward_mask_rate_and_protection():
    ids = torch.randint(0, 8, (4000, 16))
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, :5] = False
    draw = forward_mask(ids, mask_id=MASK, eps=0.1, maskable=maskable,
                        generator=torch.Generator().manual_seed(0))
    assert not draw.masked[:, :5].any()
    assert torch.equal(draw.noisy_ids[draw.masked], torch.full_like(ids[draw.masked], MASK))
    assert torch.equal(draw.noisy_ids[~draw.masked], ids[~draw.masked])
    assert draw.p_mask.min() >= 0.1 and draw.p_mask.max() <= 1.0
    # Each maskable token is masked with probability p of its row; E[p] = 0.1 + 0.9 / 2.
    rate = draw.masked[:, 5:].double().mean(dim=1)
    assert abs(float((rate - draw.p_mask.double()).mean())) < 0.01
    assert abs(float(draw.masked[:, 5:].double().mean()) - 0.55) < 0.02


def test_per_row_generators_make_each_row_independent_of_its_batch():
    ids = torch.randint(0, 8, (6, 10), generator=torch.Generator().manual_seed(7))
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, :2] = False

    def row_generators(rows):
        return [torch.Generator().manual_seed(100 + row) for row in rows]

    whole = forward_mask(ids, mask_id=MASK, eps=0.2, maskable=maskable, generator=row_generators(range(6)))
    halves = [forward_mask(ids[rows], mask_id=MASK, eps=0.2, maskable=maskable[rows],
                           generator=row_generators(rows)) for rows in ([4, 1, 5], [0, 3, 2])]
    for part, rows in zip(halves, ([4, 1, 5], [0, 3, 2])):
        assert torch.equal(part.masked, whole.masked[rows])
        assert torch.equal(part.p_mask, whole.p_mask[rows])
    assert not whole.masked[:, :2].any() and whole.p_mask.min() >= 0.2
    assert len({tuple(row) for row in whole.masked.tolist()}) > 1  # rows draw different masks
    with pytest.raises(ValueError, match="3 generators for a batch of 6 rows"):
        forward_mask(ids, mask_id=MASK, generator=row_generators(range(3)))
    # a narrower batch (rows right-padded to less width) gives each row the same first positions
    narrow = forward_mask(ids[:, :7], mask_id=MASK, eps=0.2, maskable=maskable[:, :7],
                          generator=row_generators(range(6)))
    assert torch.equal(narrow.masked, whole.masked[:, :7]) and torch.equal(narrow.p_mask, whole.p_mask)


@pytest.mark.parametrize("loss_fn", [pretrain_loss, variable_length_sft_loss])
def test_pretrain_loss_is_weighted_ce_over_real_tokens(loss_fn):
    model = ContextToy(mask_id=MASK)
    ids = torch.randint(0, 8, (6, 7), generator=torch.Generator().manual_seed(1))
    attention = torch.ones_like(ids)
    attention[1, 5:] = 0
    attention[4, 3:] = 0
    loss, info = loss_fn(model, ids, mask_id=MASK, attention_mask=attention,
                         generator=torch.Generator().manual_seed(2))
    masked = info["masked"]
    assert masked.any() and not masked[attention == 0].any()
    logprobs = _token_logprobs(model, ids.masked_fill(masked, MASK), attention)
    ce = -logprobs.gather(2, ids[..., None])[..., 0]
    expected = (ce / info["p_mask"][:, None].double())[masked].sum() / attention.sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert info["num_masked"] == masked.sum()


def test_sft_loss_protects_prompt_and_normalises_per_response():
    model = ContextToy(mask_id=MASK, record=True)
    eos = 0
    ids = torch.tensor([[1, 2, 3, 4, 5, eos, eos, eos],
                        [6, 1, 7, 2, 3, 4, 5, 6],
                        [2, 2, 5, 8, eos, eos, eos, eos]])
    prompt_lengths = torch.tensor([3, 1, 2])
    loss, info = sft_loss(model, ids, prompt_lengths, mask_id=MASK,
                          generator=torch.Generator().manual_seed(3))
    masked = info["masked"]
    positions = torch.arange(ids.shape[1])
    prompt = positions[None, :] < prompt_lengths[:, None]
    assert not masked[prompt].any()
    seen, _ = model.inputs[-1]
    assert torch.equal(seen[prompt], ids[prompt])
    # EOS padding belongs to the response: it is maskable and counts in the length.
    response_lengths = (~prompt).sum(dim=1).double()
    ce = -_token_logprobs(model, ids.masked_fill(masked, MASK)).gather(2, ids[..., None])[..., 0]
    per_row = torch.where(masked, ce / info["p_mask"][:, None].double(), 0).sum(dim=1)
    assert loss.item() == pytest.approx((per_row / response_lengths).mean().item(), rel=1e-5)


def test_sft_loss_masks_eos_padding_over_many_draws():
    model = ContextToy(mask_id=MASK)
    ids = torch.tensor([[1, 2, 3, 0, 0, 0]] * 200)
    _, info = sft_loss(model, ids, torch.full((200,), 3), mask_id=MASK,
                       generator=torch.Generator().manual_seed(4))
    assert info["masked"][:, 3:].any(dim=0).all()
    assert not info["masked"][:, :3].any()


def test_sft_loss_rejects_rows_without_response():
    ids = torch.tensor([[1, 2, 3], [1, 2, 3]])
    with pytest.raises(ValueError, match="no response"):
        sft_loss(ContextToy(mask_id=MASK), ids, torch.tensor([1, 3]), mask_id=MASK)
    with pytest.raises(ValueError, match="one prompt length per row"):
        sft_loss(ContextToy(mask_id=MASK), ids, torch.tensor([1]), mask_id=MASK)


def test_pretrain_loss_times_length_matches_minus_elbo():
    """The t-based training loss and the count-based ELBO are the same bound (up to eps)."""
    model = ContextToy(mask_id=MASK, seed=5)
    sequence = [3, 1, 4, 1, 5]
    generator = torch.Generator().manual_seed(6)
    draws = torch.stack([
        pretrain_loss(model, torch.tensor([sequence] * 500), mask_id=MASK, eps=1e-3,
                      generator=generator)[0] * len(sequence)
        for _ in range(40)
    ]).double()
    mean, stderr = draws.mean().item(), draws.std().item() / len(draws) ** 0.5
    exact = enumerated_elbo(model, [], sequence, MASK)
    assert abs(mean + exact) < 4 * stderr + 0.01, (mean, -exact, stderr)
    elbo_runs = torch.tensor([
        elbo_loglikelihood(model, [[]], [sequence], mask_id=MASK, mc_num=256, seed=seed)[0]
        for seed in range(16)
    ])
    elbo_stderr = elbo_runs.std().item() / len(elbo_runs) ** 0.5
    gap = abs(mean + elbo_runs.mean().item())
    assert gap < 4 * (stderr**2 + elbo_stderr**2) ** 0.5 + 0.01, (mean, elbo_runs.mean(), gap)


def test_losses_backpropagate_through_modules_with_logits_output():
    class TinyLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 16)
            self.head = torch.nn.Linear(16, 10)

        def forward(self, input_ids, attention_mask=None):
            return SimpleNamespace(logits=self.head(self.embed(input_ids)))

    model = TinyLM()
    ids = torch.randint(0, 9, (4, 12))
    loss, _ = pretrain_loss(model, ids, mask_id=MASK, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and model.head.weight.grad.abs().sum() > 0


def test_call_logits_unwraps_and_rejects_bad_outputs():
    ids = torch.zeros(2, 3, dtype=torch.long)
    logits = torch.randn(2, 3, 5)
    assert call_logits(lambda i, m: SimpleNamespace(logits=logits), ids, None) is logits
    assert call_logits(lambda i, m: logits, ids, None) is logits
    with pytest.raises(TypeError, match="logits"):
        call_logits(lambda i, m: (logits,), ids, None)
    with pytest.raises(ValueError, match="shape"):
        call_logits(lambda i, m: logits[:, :2], ids, None)
