"""LLaDA's sampler and iLLaDA's variable-length generation, on toy models with known answers."""
import pytest
import torch

from illada_eval.model import generate
from illada_eval.model.sampler import transfer_schedule

from toy_models import ContextToy, ScriptedToy, UnigramToy

MASK, EOS, V = 9, 0, 10


def _llada_reference(model, prompt, *, gen_length, block_length, steps, cfg_scale=0.0):
    """LLaDA's published sampler, written plainly for one prompt (greedy, low confidence)."""
    x = torch.tensor([list(prompt) + [MASK] * gen_length])
    prompt_index = torch.arange(x.shape[1]) < len(prompt)
    num_blocks = gen_length // block_length
    for block in range(num_blocks):
        end = len(prompt) + (block + 1) * block_length
        per_block = steps // num_blocks
        base, extra = divmod(block_length, per_block)
        for count in [base + (i < extra) for i in range(per_block)]:
            mask_index = x == MASK
            logits = model(x, None).double()
            if cfg_scale > 0:
                uncond = model(x.masked_fill(prompt_index, MASK), None).double()
                logits = uncond + (cfg_scale + 1) * (logits - uncond)
            x0 = logits.argmax(-1)
            x0_p = torch.softmax(logits, -1).gather(-1, x0[..., None])[..., 0]
            x0_p[:, end:] = -torch.inf
            confidence = torch.where(mask_index, x0_p, -torch.inf)
            chosen = torch.topk(confidence[0], k=count).indices
            x[0, chosen] = x0[0, chosen]
    return x[0, len(prompt):].tolist()


def _scripted(targets_after_prompt, strengths, prompt_length, record=True):
    """A scripted toy whose generated region (after a prompt of ``prompt_length``) is fixed."""
    targets = [1] * prompt_length + list(targets_after_prompt)
    return ScriptedToy(targets, [3.0] * prompt_length + list(strengths), V, MASK, record=record)


def _reveal_log(model, prompt_length):
    """For each model call, the generated positions revealed by the step that used it."""
    canvases = [ids[0, prompt_length:] for ids, _ in model.inputs]
    log = []
    for before, after in zip(canvases, canvases[1:]):
        log.append(((before == MASK) & (after != MASK)).nonzero()[:, 0].tolist())
    return log, canvases


def test_transfer_schedule_is_even_with_extras_first():
    assert transfer_schedule(8, 3) == [3, 3, 2]
    assert transfer_schedule(32, 32) == [1] * 32
    assert transfer_schedule(5, 8) == [1] * 5 + [0] * 3
    for n, s in [(32, 7), (1024, 1024), (13, 4)]:
        plan = transfer_schedule(n, s)
        assert sum(plan) == n and max(plan) - min(plan) <= 1 and plan == sorted(plan, reverse=True)


def test_reveal_order_follows_confidence_and_schedule():
    strengths = [1.0, 4.0, 2.5, 0.5, 3.0, 0.2, 2.0, 5.0]  # all distinct: a strict order
    targets = [2, 3, 4, 5, 6, 7, 8, 1]
    model = _scripted(targets, strengths, prompt_length=2)
    out = generate(model, [[1, 1]], mask_id=MASK, gen_length=8, block_length=4, steps=6)
    assert out.tokens == [targets] and out.nfe == 6 == model.calls
    log, canvases = _reveal_log(model, 2)
    final = torch.tensor(targets)
    log.append(((canvases[-1] == MASK) & (final != MASK)).nonzero()[:, 0].tolist())
    schedule = [2, 1, 1]  # 4 tokens in 3 steps per block, the extra one first
    expected = []
    for block in range(2):
        order = sorted(range(block * 4, block * 4 + 4), key=lambda i: -strengths[i])
        for count in schedule:
            expected.append(sorted(order[:count]))
            order = order[count:]
    assert [sorted(step) for step in log] == expected
    # The second block stays masked while the first is decoded.
    assert all((canvas[4:] == MASK).all() for canvas in canvases[:3])


@pytest.mark.parametrize(
    "gen_length,block_length,steps,cfg_scale",
    [(8, 8, 8, 0.0), (8, 4, 4, 0.0), (12, 4, 6, 0.0), (6, 3, 6, 0.5), (8, 2, 8, 0.0)],
)
def test_greedy_equals_llada_reference_token_for_token(gen_length, block_length, steps, cfg_scale):
    model = ContextToy(mask_id=MASK, seed=11)
    prompts = [[1, 2, 3], [4, 5], [6, 7, 8, 1, 2]]
    out = generate(model, prompts, mask_id=MASK, gen_length=gen_length, block_length=block_length,
                   steps=steps, cfg_scale=cfg_scale)
    assert out.nfe == steps
    for prompt, tokens in zip(prompts, out.tokens):
        assert tokens == _llada_reference(model, prompt, gen_length=gen_length,
                                          block_length=block_length, steps=steps,
                                          cfg_scale=cfg_scale)


def test_batching_invariance_and_determinism():
    model = ContextToy(mask_id=MASK, seed=12)
    prompts = [[1, 2, 3, 4, 5, 6], [7], [2, 2, 8], []]
    settings = dict(mask_id=MASK, gen_length=8, block_length=4, steps=8)
    greedy = generate(model, prompts, **settings)
    assert generate(model, prompts, **settings).tokens == greedy.tokens
    for i, prompt in enumerate(prompts):
        assert generate(model, [prompt], **settings).tokens[0] == greedy.tokens[i]
    sampled = dict(settings, temperature=1.0, remasking="random")
    seeds = [11, 22, 33, 44]
    batch = generate(model, prompts, seed=seeds, **sampled)
    assert generate(model, prompts, seed=seeds, **sampled).tokens == batch.tokens
    for i, prompt in enumerate(prompts):
        assert generate(model, [prompt], seed=[seeds[i]], **sampled).tokens[0] == batch.tokens[i]
    assert generate(model, prompts, seed=[5, 6, 7, 8], **sampled).tokens != batch.tokens


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_gumbel_sampling_draws_the_tempered_distribution(temperature):
    probs = torch.tensor([0.05, 0.1, 0.2, 0.15, 0.02, 0.08, 0.12, 0.18, 0.1, 0.0], dtype=torch.float64)
    model = UnigramToy(probs.tolist(), mask_id=MASK)
    out = generate(model, [[1]] * 3000, mask_id=MASK, gen_length=1, block_length=1, steps=1,
                   temperature=temperature, seed=3)
    counts = torch.bincount(torch.tensor([t[0] for t in out.tokens]), minlength=V).double()
    tempered = probs ** (1 / temperature)
    tempered /= tempered.sum()
    expected = tempered * len(out.tokens)
    spread = (expected * (1 - tempered)).sqrt()
    assert ((counts - expected).abs() <= 4 * spread + 1).all(), (counts, expected)


def _eos_model(prompt_length, eos_at, length=16, record=False):
    targets = [2 + (i % 7) for i in range(length)]
    targets[eos_at] = EOS
    strengths = [1.0 + 0.1 * ((5 * i) % length) for i in range(length)]
    return _scripted(targets, strengths, prompt_length, record=record), targets


def test_variable_length_stops_at_the_block_holding_eos():
    model, targets = _eos_model(prompt_length=3, eos_at=6)
    settings = dict(mask_id=MASK, gen_length=16, block_length=4, steps=8, eos_id=EOS)
    fixed = generate(model, [[1, 1, 1]], stop_early=False, **settings)
    variable = generate(model, [[1, 1, 1]], variable_length=True, **settings)
    assert fixed.tokens == variable.tokens == [targets[:6]]
    assert variable.stopped == fixed.stopped == [True]
    assert fixed.nfe == 8 and variable.nfe == 4  # two blocks of 2 steps instead of four
    assert variable.nfe < fixed.nfe


def test_fixed_length_early_stop_keeps_tokens_and_saves_calls():
    model = ContextToy(mask_id=MASK, seed=14)
    prompts = [[1, 2, 3], [4, 5], [6, 7, 8, 1, 2], [3]]
    settings = dict(mask_id=MASK, gen_length=16, block_length=2, steps=16, eos_id=EOS)
    full = generate(model, prompts, stop_early=False, **settings)
    early = generate(model, prompts, **settings)
    assert early.tokens == full.tokens and early.stopped == full.stopped
    assert any(early.stopped)  # the toy does emit EOS, so something was saved
    assert early.nfe <= full.nfe == 16
    assert sum(early.nfe_per_sequence) < sum(full.nfe_per_sequence)


def test_variable_length_batch_drops_finished_prompts():
    # EOS at absolute position 7: generated offset 5 (block 1) after a 2-token prompt,
    # offset 2 (block 0) after a 5-token prompt; a third prompt never stops before the budget.
    targets = [2 + (i % 7) for i in range(24)]
    targets[7] = EOS
    model = ScriptedToy(targets, [2.0 + 0.1 * (i % 5) for i in range(24)], V, MASK, record=True)
    prompts = [[1, 1], [1, 1, 1, 1, 1], [1] * 8]
    out = generate(model, prompts, mask_id=MASK, gen_length=12, block_length=4, steps=6,
                   eos_id=EOS, variable_length=True)
    assert out.tokens == [targets[2:7], targets[5:7], targets[8:20]]
    assert out.stopped == [True, True, False]
    assert out.nfe_per_sequence == [4, 2, 6] and out.nfe == 6
    assert [len(ids) for ids, _ in model.inputs] == [3, 3, 2, 2, 1, 1]
    # Each prompt alone gives the same tokens.
    for prompt, tokens in zip(prompts, out.tokens):
        alone = generate(model, [prompt], mask_id=MASK, gen_length=12, block_length=4, steps=6,
                         eos_id=EOS, variable_length=True)
        assert alone.tokens == [tokens]


def test_stop_sequence_across_blocks_ends_generation():
    targets = [2, 3, 4, 5, 6, 7, 8, 2, 3, 4, 5, 6]
    model = _scripted(targets, [2.0] * 12, prompt_length=1)
    out = generate(model, [[1]], mask_id=MASK, gen_length=12, block_length=4, steps=12,
                   stop=[[4, 5]], variable_length=True)  # [4, 5] at offsets 2-3: block 0
    assert out.tokens == [[2, 3]] and out.nfe == 4
    out = generate(model, [[1]], mask_id=MASK, gen_length=12, block_length=4, steps=12,
                   stop=[[8, 2, 3]], variable_length=True)  # offsets 6-8: spans blocks 1 and 2
    assert out.tokens == [[2, 3, 4, 5, 6, 7]] and out.nfe == 12 and out.stopped == [True]


def test_keep_text_after_eos_returns_the_canvas_uncut_and_stops_early_only_at_stop_sequences():
    # content, EOS, content, the stop sequence [7, 8] in block 2 (offsets 8-9), content
    targets = [2, 3, EOS, 4, 5, 6, EOS, 3, 7, 8, 2, 3, 4, 5, 6, 2]
    settings = dict(mask_id=MASK, gen_length=16, block_length=4, steps=16, eos_id=EOS)
    model = _scripted(targets, [2.0] * 16, prompt_length=1)
    cut = generate(model, [[1]], **settings, stop=[[7, 8]])
    assert cut.tokens == [[2, 3]] and cut.nfe == 4  # the default: the first EOS ends it all
    kept = generate(model, [[1]], **settings, stop=[[7, 8]], keep_text_after_eos=True)
    assert kept.tokens == [targets[:12]] and kept.stopped == [True]  # up to the block holding the stop
    assert kept.nfe == 12  # the block after it is never decoded
    whole = generate(model, [[1]], **settings, keep_text_after_eos=True)
    assert whole.tokens == [targets] and whole.stopped == [False] and whole.nfe == 16
    with pytest.raises(ValueError, match="keep_text_after_eos needs fixed length"):
        generate(model, [[1]], **settings, keep_text_after_eos=True, variable_length=True)


def test_eos_with_zero_confidence_is_revealed_last_in_its_block():
    targets = [3, EOS, 4, 5]
    strengths = [1.0, 6.0, 2.0, 1.5]  # EOS is the most confident proposal
    expected = {False: [[1], [2], [3]], True: [[2], [3], [0]]}  # one token per step
    for suppress, order in expected.items():
        model = _scripted(targets, strengths, prompt_length=1)
        out = generate(model, [[1]], mask_id=MASK, gen_length=4, block_length=4, steps=4,
                       eos_id=EOS, confidence_eos_eot_inf=suppress)
        log, _ = _reveal_log(model, 1)
        assert log == order  # the fourth step reveals what is left: EOS when suppressed
        assert out.tokens == [[3]] and out.stopped == [True]


def test_threshold_one_is_one_token_per_step_and_lower_thresholds_save_calls():
    model = ContextToy(mask_id=MASK, seed=13)
    prompts = [[1, 2, 3], [4, 5]]
    settings = dict(mask_id=MASK, gen_length=8, block_length=4)
    reference = generate(model, prompts, steps=8, **settings)
    parallel = generate(model, prompts, steps=1, threshold=1.0, **settings)
    assert parallel.tokens == reference.tokens and parallel.nfe == reference.nfe == 8
    # Scripted confidences: p = e^s / (e^s + 8). Above 0.5 means s > log 8 ~ 2.08.
    strengths = [3.0, 1.0, 3.5, 2.5, 0.5, 1.5, 1.0, 4.0]
    scripted = _scripted([2, 3, 4, 5, 6, 7, 8, 2], strengths, prompt_length=1)
    out = generate(scripted, [[1]], steps=1, threshold=0.5, **settings)
    # Block 0: 3 confident at once, then 1; block 1: 1 confident at once, then 3 one at a time.
    assert out.tokens == [[2, 3, 4, 5, 6, 7, 8, 2]] and out.nfe == 2 + 4


def test_mask_token_is_never_proposed():
    logits = torch.randn(1, 1, V, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    logits[..., MASK] = 10.0  # an undertrained model ranking the mask token first everywhere
    model = lambda ids, attention_mask: logits.expand(*ids.shape, V).clone()
    out = generate(model, [[1, 2]], mask_id=MASK, gen_length=6, block_length=3, steps=6)
    assert len(out.tokens[0]) == 6 and MASK not in out.tokens[0]


@pytest.mark.parametrize("options", [
    dict(),
    dict(variable_length=True, eos_id=2, threshold=0.5),
    dict(temperature=1.0, remasking="random", cfg_scale=0.5),
])
def test_real_network_output_does_not_depend_on_the_batch(options):
    from tiny import tiny_model

    model = tiny_model(seed=0)
    mask_id = model.config.mask_token_id
    prompts = [[10, 11, 12, 13], [20], [30, 31, 32, 33, 34, 35, 36]]
    seeds = [101, 102, 103]
    settings = dict(mask_id=mask_id, gen_length=8, block_length=4, steps=8, **options)
    batch = generate(model, prompts, seed=seeds, **settings)
    assert all(mask_id not in tokens for tokens in batch.tokens)
    for prompt, seed, tokens in zip(prompts, seeds, batch.tokens):
        assert generate(model, [prompt], seed=[seed], **settings).tokens == [tokens]


@pytest.mark.parametrize("options", [
    dict(),
    dict(cfg_scale=0.5),
    dict(threshold=0.2, kv_cache="prefix"),
    dict(kv_cache="dual", cfg_scale=0.5),
])
def test_only_the_block_is_projected_and_tokens_equal_the_full_projection(options):
    from tiny import full_projection, projected_rows, tiny_model

    model = tiny_model(seed=2, initializer_range=0.3)  # spread logits: no near-ties to reorder
    prompts = [[10, 11, 12, 13], [20], [30, 31, 32]]
    settings = dict(mask_id=model.config.mask_token_id, gen_length=8, block_length=4, steps=4)
    reference = generate(full_projection(model), prompts, **{**settings, **options, "kv_cache": None})
    rows = projected_rows(model)
    out = generate(model, prompts, **settings, **options)
    if "kv_cache" not in options:
        assert out.tokens == reference.tokens and out.nfe == reference.nfe
    guided = 2 if options.get("cfg_scale") else 1
    if "threshold" in options:  # at least one reveal per step: at most 4 + 3 + 2 + 1 per block
        assert sum(rows) <= guided * len(prompts) * 2 * (4 + 3 + 2 + 1)
    else:  # two steps per block of 4 reveal 2 + 2: the first reads 4 positions per row, the second 2
        assert sum(rows) == guided * len(prompts) * 2 * (4 + 2)


def test_block_logits_equal_the_full_projection_at_the_positions_read():
    from tiny import full_projection, tiny_model

    from illada_eval.model.kv_cache import BlockKVCache
    from illada_eval.model.sampler import _block_logits, _Rows

    model = tiny_model(seed=2)
    rows = _Rows([[10, 11, 12, 13], [20]], pad_id=5, mask_id=5, seeds=[0, 1], device=torch.device("cpu"))
    rows.append_masks(8)
    read = torch.tensor([[True, False, True, True], [False, True, True, False]])
    for cfg_scale in (0.0, 0.5):
        for subset in (None, torch.tensor([1])):
            rows_read = read if subset is None else read[subset]
            full = _block_logits(full_projection(model), rows, subset, 8, rows_read, cfg_scale, None)
            assert full.shape == (int(rows_read.sum()), model.config.vocab_size)
            for cache in (None, BlockKVCache("dual")):
                part = _block_logits(model, rows, subset, 8, rows_read, cfg_scale, cache)
                torch.testing.assert_close(part, full, rtol=0, atol=1e-6)


def test_greedy_confidence_is_the_float64_softmax_probability():
    from illada_eval.model.sampler import _propose

    logits = torch.randn(3, 4, V, generator=torch.Generator().manual_seed(1)) * 4
    read = torch.ones(3, 4, dtype=torch.bool)
    read[1, 2] = False
    x0, confidence = _propose(logits[read], read, None, mask_id=MASK, temperature=0.0,
                              remasking="low_confidence")
    assert x0[1, 2] == MASK and confidence[1, 2] == 0  # not read
    exact = logits.double()
    exact[..., MASK] = -torch.inf
    assert torch.equal(x0[read], exact.argmax(-1)[read])
    probability = torch.softmax(logits.double(), -1).gather(-1, exact.argmax(-1)[..., None])[..., 0]
    probability[~read] = 0
    # the normaliser in float32: a few float32 roundings of the log, relative error ~1e-7
    torch.testing.assert_close(confidence, probability, rtol=1e-6, atol=0)


def test_rows_whose_block_is_finished_leave_the_forward():
    # prompt [1]'s block (script positions 1-4) is all confident; prompt [1, 1]'s (2-5) ends on
    # a weak position, so it needs a second step, which runs its row alone
    strengths = [3.0, 3.0, 3.0, 3.0, 3.0, 0.5]
    model = ScriptedToy([1, 2, 3, 4, 6, 7], strengths, V, MASK, record=True)
    settings = dict(mask_id=MASK, gen_length=4, block_length=4, steps=4, threshold=0.5)
    out = generate(model, [[1], [1, 1]], **settings)
    assert [ids.shape[0] for ids, _ in model.inputs] == [2, 1]
    assert out.tokens == [[2, 3, 4, 6], [3, 4, 6, 7]]
    assert out.nfe_per_sequence == [1, 2]


def test_argument_errors_name_the_fix():
    model = ContextToy(mask_id=MASK)
    with pytest.raises(ValueError, match="divide gen_length"):
        generate(model, [[1]], mask_id=MASK, gen_length=10, block_length=4, steps=10)
    with pytest.raises(ValueError, match="multiple of the number of blocks"):
        generate(model, [[1]], mask_id=MASK, gen_length=8, block_length=4, steps=5)
    with pytest.raises(ValueError, match="eos_id or stop"):
        generate(model, [[1]], mask_id=MASK, gen_length=8, block_length=4, steps=8,
                 variable_length=True)
    with pytest.raises(ValueError, match="remasking"):
        generate(model, [[1]], mask_id=MASK, gen_length=8, block_length=4, steps=8, remasking="top")
    with pytest.raises(ValueError, match="one per prompt"):
        generate(model, [[1], [2]], mask_id=MASK, gen_length=4, block_length=4, steps=4, seed=[1])
