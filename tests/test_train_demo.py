"""The committed demo model and the sanity tasks that test it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lm_eval.tasks import TaskManager
from transformers import AutoTokenizer

import illada_eval
from illada_eval import evaluate
from illada_eval.model import confidence_score, generate
from illada_eval.tasks import TASKS_DIR
from illada_eval.train.synthetic import NUM_CHOICES, sanity_docs

DEMO_DIR = Path(illada_eval.__file__).resolve().parent / "demo"
SANITY_TASKS = ["illada_sanity_mc", "illada_sanity_mc_elbo", "illada_sanity_gen"]


@pytest.fixture(scope="module")
def demo():
    return illada_eval.load_model(DEMO_DIR), AutoTokenizer.from_pretrained(DEMO_DIR)


def test_demo_is_small_and_shaped_like_illada(demo):
    model, tokenizer = demo
    committed = sum(path.stat().st_size for path in DEMO_DIR.iterdir() if path.is_file())
    assert committed < 8 * 2**20
    assert sum(p.numel() for p in model.parameters()) <= 2_000_000
    config = model.config
    assert config.model_type == "illada_eval" and config.tie_word_embeddings
    assert config.num_key_value_heads < config.num_attention_heads  # grouped-query attention
    assert config.mask_token_id == 5 == tokenizer.mask_token_id
    assert tokenizer.convert_ids_to_tokens(5) == "<[MASK]>"
    assert config.eos_token_id == tokenizer.eos_token_id and tokenizer.pad_token_id is not None
    assert not (DEMO_DIR / "training_state.pt").exists()
    assert "illada-train demo" in (DEMO_DIR / "README.md").read_text()


def test_demo_scores_far_above_chance_on_held_out_prompts(demo):
    model, tokenizer = demo
    docs = sanity_docs(40)
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    prompts = [encode(d["prompt"]) for d in docs for _ in d["choices"]]
    options = [encode(choice) for d in docs for choice in d["choices"]]
    scores = torch.tensor(confidence_score(model, prompts, options, mask_id=5)).view(len(docs), NUM_CHOICES)
    accuracy = (scores.argmax(dim=1) == torch.tensor([d["label"] for d in docs])).float().mean().item()
    assert accuracy > 0.6  # chance: 0.25

    out = generate(model, [encode(d["prompt"]) for d in docs], mask_id=5, gen_length=16, block_length=8,
                   steps=16, eos_id=tokenizer.eos_token_id, variable_length=True)
    answers = [tokenizer.decode(tokens, skip_special_tokens=True).strip() for tokens in out.tokens]
    exact = sum(a == d["answer"] for a, d in zip(answers, docs)) / len(docs)
    assert exact > 0.5  # chance: about 0
    assert sum(out.stopped) / len(docs) > 0.9  # answers end with EOS, so decoding stops early


def test_demo_decodes_a_long_fixed_length_canvas(demo):
    """LLaDA's reference procedure: 96 positions after the prompt, one token per step, no stop
    at EOS. The demo saw EOS padding of every length in training, so it writes the answer and
    fills the rest of the canvas with EOS instead of collapsing."""
    model, tokenizer = demo
    docs = sanity_docs(16)
    out = generate(model, [tokenizer.encode(d["prompt"]) for d in docs], mask_id=5, gen_length=96,
                   block_length=32, steps=96, eos_id=tokenizer.eos_token_id, stop_early=False)
    answers = [tokenizer.decode(tokens, skip_special_tokens=True).strip() for tokens in out.tokens]
    assert sum(a == d["answer"] for a, d in zip(answers, docs)) / len(docs) > 0.6
    assert out.nfe == 96


def test_sanity_tasks_build_from_generated_docs():
    manager = TaskManager(include_path=str(TASKS_DIR / "sanity"), include_defaults=False)
    tasks = manager.load(SANITY_TASKS)["tasks"]
    expected = sanity_docs(200)
    for name in SANITY_TASKS:
        task = tasks[name]
        docs = list(task.test_docs())
        assert len(docs) == 200 and docs[0]["prompt"] == expected[0]["prompt"]
        assert task.doc_to_text(docs[0]) == expected[0]["prompt"]
    mc = tasks["illada_sanity_mc"]
    assert mc.config.output_type == "multiple_choice" and mc.config.target_delimiter == ""
    assert mc.doc_to_choice(expected[0]) == expected[0]["choices"]
    assert mc.config.metadata["illada"]["scoring"] == "confidence"
    assert tasks["illada_sanity_mc_elbo"].config.metadata["illada"]["scoring"] == "elbo"
    gen = tasks["illada_sanity_gen"]
    assert gen.config.generation_kwargs["variable_length"] is True
    assert gen.config.process_results(expected[0], [f" {expected[0]['answer']} "]) == {"exact_match": 1.0}
    assert gen.config.process_results(expected[0], ["wrong"]) == {"exact_match": 0.0}


def test_sanity_tasks_run_end_to_end_through_the_cli(tmp_path):
    assert evaluate.main(["--model", "demo", "--tasks", ",".join(SANITY_TASKS), "--limit", "20",
                          "--output", str(tmp_path)]) == 0
    (result_file,) = tmp_path.rglob("results_*.json")
    results = json.loads(result_file.read_text())["results"]
    assert results["illada_sanity_mc"]["acc,none"] > 0.5
    assert results["illada_sanity_mc_elbo"]["acc,none"] > 0.5
    assert results["illada_sanity_gen"]["exact_match,none"] > 0.5
