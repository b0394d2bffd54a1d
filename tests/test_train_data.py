"""Training data: tokenizer, synthetic curriculum, packing, sample order, random-length cuts."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer

from illada_eval.train import synthetic
from illada_eval.train.config import load_config
from illada_eval.train.data import (
    PackedRows,
    StreamingRows,
    micro_batch,
    read_records,
    rows,
    segments,
    step_pad_length,
    two_segment_cut,
)
from illada_eval.train.tokenizer import build_char_tokenizer, train_bpe_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer()


def config_for(**overrides):
    settings = {"tokenizer": "char", "max_steps": 1, "seq_len": 8, "batch_size": 2, "micro_batch_size": 1}
    settings.update(overrides)
    return load_config(None, settings)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


# --------------------------------------------------------------------------- tokenizer


def test_char_tokenizer_round_trips_and_loads_with_auto_tokenizer(tokenizer, tmp_path):
    text = "rev abc=cba\n12+30=42"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) == len(text) and tokenizer.decode(ids) == text
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.convert_ids_to_tokens(5) == "<[MASK]>" and loaded.mask_token_id == 5
    assert loaded.eos_token_id is not None and loaded.pad_token_id is not None
    assert loaded.eos_token_id not in (5, loaded.pad_token_id)
    assert loaded.encode(text, add_special_tokens=False) == ids
    # special tokens written in the text are single tokens
    assert loaded.encode("a<eos>", add_special_tokens=False) == [ids[4], loaded.eos_token_id]


def test_bpe_tokenizer_keeps_the_special_ids(tokenizer):
    bpe = train_bpe_tokenizer(["the cat sat on the mat"] * 50, vocab_size=300)
    assert [bpe.convert_ids_to_tokens(i) for i in range(6)] == tokenizer.convert_ids_to_tokens(list(range(6)))
    assert bpe.decode(bpe.encode("the cat", add_special_tokens=False)) == "the cat"
    assert len(bpe.encode("the cat sat", add_special_tokens=False)) < len("the cat sat")


# --------------------------------------------------------------------------- synthetic curriculum


def test_curriculum_answers_are_right():
    for record in synthetic.training_examples(200, seed=3):
        prompt, answer = record["prompt"], record["response"]
        operation, _, argument = prompt[:-1].partition(" ")
        if operation == "inc":
            assert int(answer) == int(argument) + 1 and str(int(argument)) == argument
        elif operation == "copy":
            assert answer == argument
        elif operation == "rev":
            assert answer == argument[::-1]
        elif operation == "sort":
            assert answer == "".join(sorted(argument))
        else:
            assert operation == "next" and (argument + answer) == (argument[:len(answer)] * 20)[: len(argument) + len(answer)]


def test_sanity_docs_are_deterministic_held_out_and_fair():
    docs = synthetic.sanity_docs(100)
    assert docs == synthetic.sanity_docs(100)
    training_prompts = {r["prompt"] for r in synthetic.training_examples(20000, seed=0)}
    assert not any(d["prompt"] in training_prompts for d in docs)
    assert {d["skill"] for d in docs} == set(synthetic.SKILLS)
    for doc in docs:
        assert doc["choices"][doc["label"]] == doc["answer"]
        assert len(set(doc["choices"])) == synthetic.NUM_CHOICES
        assert {len(c) for c in doc["choices"]} == {len(doc["answer"])}  # length gives nothing away
    # the right answer is not always in the same place
    assert len({d["label"] for d in docs}) == synthetic.NUM_CHOICES


# --------------------------------------------------------------------------- packing


def test_pretraining_packs_documents_with_eos(tokenizer, tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("abc\n\ndefgh\nij\n")
    config = config_for(data_files=[str(path)], seq_len=4)
    built = list(rows(segments(read_records(config), config, tokenizer), config, tokenizer.eos_token_id))
    stream = tokenizer.encode("abc<eos>defgh<eos>ij<eos>", add_special_tokens=False)
    assert [ids for ids, _ in built] == [stream[0:4], stream[4:8], stream[8:12]]  # last partial row dropped


def test_sft_llada_pads_with_eos_and_keeps_prompt_lengths(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [
        {"prompt": "ab=", "response": "c"},
        {"prompt": "too long=", "response": "xxxxxxxxx"},  # longer than seq_len: skipped
        {"prompt": "d=", "response": "ef"},
    ])
    config = config_for(objective="sft-llada", data_files=[path], seq_len=8)
    with pytest.warns(UserWarning, match="skipped 1 of 3 SFT examples"):
        built = list(rows(segments(read_records(config), config, tokenizer), config, tokenizer.eos_token_id))
    eos = tokenizer.eos_token_id
    assert built == [
        (tokenizer.encode("ab=c", add_special_tokens=False) + [eos] * 4, 3),
        (tokenizer.encode("d=ef", add_special_tokens=False) + [eos] * 4, 2),
    ]


def test_chat_records_go_through_the_chat_template(tokenizer, tmp_path):
    tokenizer = build_char_tokenizer()
    tokenizer.chat_template = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}" \
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    path = write_jsonl(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"prompt": "ab", "response": "c"},
    ])
    config = config_for(objective="sft-llada", data_files=[path], seq_len=32, chat_template=True)
    first, second = segments(read_records(config), config, tokenizer)
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    assert first.ids == encode("[user]hi[assistant]yo") + [tokenizer.eos_token_id]
    assert first.prompt_length == len(encode("[user]hi[assistant]"))
    assert second.ids[: second.prompt_length] == encode("[user]ab[assistant]")
    with pytest.raises(ValueError, match="has no chat template"):
        list(segments(read_records(config), config, build_char_tokenizer()))


def test_sft_illada_packs_prompt_response_and_eos(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "ab=", "response": "c"}, {"prompt": "d=", "response": "ef"}])
    config = config_for(objective="sft-illada", data_files=[path], seq_len=5)
    built = list(rows(segments(read_records(config), config, tokenizer), config, tokenizer.eos_token_id))
    stream = tokenizer.encode("ab=c<eos>d=ef<eos>", add_special_tokens=False)
    assert [ids for ids, _ in built] == [stream[:5], stream[5:]] and {p for _, p in built} == {0}


def test_every_epoch_visits_every_row_once_in_a_new_order(tokenizer):
    config = config_for(synthetic=True, synthetic_examples=60, objective="sft-illada", seq_len=16)
    data = PackedRows(config, tokenizer)
    n = len(data)
    rows_of = lambda samples: [tuple(r.tolist()) for r in data.get(samples)[0]]
    first, second = rows_of(list(range(n))), rows_of(list(range(n, 2 * n)))
    assert sorted(first) == sorted(second) == sorted(tuple(r.tolist()) for r in data.ids)
    assert first != second
    assert rows_of([n + 3, 2]) == [second[3], first[2]]  # random access, any order


def test_streaming_gives_each_sample_one_fixed_row(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "docs.jsonl", [{"text": "x" * k} for k in range(1, 30)])
    config = config_for(data_files=[path], seq_len=4, streaming=True, shuffle_buffer=5)
    whole = StreamingRows(config, tokenizer).get(list(range(40)))[0]  # more than one epoch
    parts = StreamingRows(config, tokenizer)
    assert torch.equal(torch.cat([parts.get([0, 1, 2])[0], parts.get(list(range(3, 40)))[0]]), whole)
    skipped = StreamingRows(config, tokenizer).get([37, 39])[0]  # a resumed run skips ahead
    assert torch.equal(skipped, whole[[37, 39]])


# --------------------------------------------------------------------------- random-length cuts


def test_two_segment_split_hides_each_segment_from_the_other():
    config = config_for(seq_len=6, two_segment_prob=1.0)
    ids = torch.arange(10, 22).view(2, 6)
    batch = micro_batch(ids, torch.zeros(2), [7, 8], step=3, config=config, pad_id=0)
    cuts = [two_segment_cut(config, 3, sample, 6) for sample in (7, 8)]
    assert batch.input_ids.shape == (4, 6) and batch.num_tokens == 12
    for row, cut in enumerate(cuts):
        first, second = batch.input_ids[row], batch.input_ids[2 + row]
        assert first[:cut].tolist() == ids[row, :cut].tolist()
        assert second[: 6 - cut].tolist() == ids[row, cut:].tolist()
        assert batch.attention_mask[row].tolist() == [1] * cut + [0] * (6 - cut)
        assert batch.attention_mask[2 + row].tolist() == [1] * (6 - cut) + [0] * cut


def test_cut_draws_depend_on_sample_not_on_batch_company():
    config = config_for(seq_len=64, two_segment_prob=0.3, random_length_prob=0.5)
    cuts = [two_segment_cut(config, 5, sample, 64) for sample in range(400)]
    share = sum(c is not None for c in cuts) / len(cuts)
    assert 0.2 < share < 0.4
    ids = torch.randint(6, 90, (400, 64))
    alone = micro_batch(ids[17:18], torch.zeros(1), [17], 5, config, pad_id=0)
    together = micro_batch(ids[10:20], torch.zeros(10), list(range(10, 20)), 5, config, pad_id=0)
    assert torch.equal(alone.input_ids[0], together.input_ids[7])


def test_sft_llada_random_padding_ends_at_the_draw_and_keeps_each_example_whole():
    """Rows padded with EOS (id 2) to seq_len 12: each step's padding stops at its drawn length,
    or at the example's own EOS where that is later; what lies beyond is hidden."""
    config = config_for(objective="sft-llada", seq_len=12, random_pad_prob=1.0)
    examples = [[7, 8, 9, 2], [7, 8, 9, 10, 11, 12, 13, 2]]
    ids = torch.tensor([e + [2] * (12 - len(e)) for e in examples])
    draws = [step_pad_length(config, step) for step in range(300)]
    assert min(draws) == 1 and max(draws) == 12 and len(set(draws)) == 12
    for step, drawn in enumerate(draws[:40]):
        batch = micro_batch(ids, torch.tensor([1, 2]), [0, 1], step, config, pad_id=0)
        row_lengths = [min(12, max(drawn, len(e))) for e in examples]
        assert batch.input_ids.shape == (2, max(row_lengths))
        assert batch.num_tokens == sum(row_lengths)
        assert torch.equal(batch.input_ids, ids[:, : max(row_lengths)])
        hidden = batch.attention_mask
        visible = [max(row_lengths)] * 2 if hidden is None else hidden.sum(1).tolist()
        assert visible == row_lengths
    constant = micro_batch(ids, torch.tensor([1, 2]), [0, 1], 0, config_for(objective="sft-llada", seq_len=12),
                           pad_id=0)
    assert torch.equal(constant.input_ids, ids) and constant.attention_mask is None


def test_sft_llada_rows_are_never_cut(tokenizer):
    config = config_for(objective="sft-llada", seq_len=6)
    ids = torch.arange(12).view(2, 6)
    batch = micro_batch(ids, torch.tensor([2, 3]), [0, 1], 0, config, pad_id=0)
    assert torch.equal(batch.input_ids, ids) and batch.prompt_lengths.tolist() == [2, 3]
