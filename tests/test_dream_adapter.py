"""Dream's sampler and likelihood picked through the ``illada`` backend's settings."""
import lm_eval
import pytest
from lm_eval.tasks import TaskManager

from illada_eval.adapter import DiffusionLM
from illada_eval.model import DreamForMaskedLM
from illada_eval.model.dream_likelihood import dream_loglikelihood
from lm_eval_fixtures import one_torch_thread, tasks_dir  # noqa: F401  (fixtures)
from lm_eval_fixtures import (
    BOS_ID,
    COPY_DOCS,
    EOS_ID,
    MASK_ID,
    PAD_ID,
    VOCAB,
    CopyToy,
    char_tokenizer,
    copy_score,
)
from test_dream_model import random_qwen2_tensors, tiny_dream_config, write_dream_checkpoint


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


@pytest.fixture(scope="module")
def dream_checkpoint(tmp_path_factory):
    """A tiny official-layout Dream checkpoint (random weights) with the char tokenizer."""
    directory = tmp_path_factory.mktemp("dream")
    config = tiny_dream_config(vocab_size=VOCAB, mask_token_id=MASK_ID, eos_token_id=EOS_ID,
                               pad_token_id=PAD_ID, bos_token_id=BOS_ID, max_position_embeddings=128)
    write_dream_checkpoint(directory, random_qwen2_tensors(config), config)
    char_tokenizer().save_pretrained(directory)
    return directory


def evaluate(lm, tasks_dir, tasks):
    manager = TaskManager(include_path=str(tasks_dir), include_defaults=False)
    return lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, log_samples=True,
                                   bootstrap_iters=0)


@pytest.mark.parametrize("alg", ["origin", "maskgit_plus", "topk_margin", "entropy"])
def test_dream_sampler_copies_through_lm_eval(alg, tokenizer, tasks_dir):
    lm = DiffusionLM(pretrained=CopyToy(tokenizer), tokenizer=tokenizer, remasking=alg, top_p=0.95)
    results = evaluate(lm, tasks_dir, ["toy_gen"])
    assert [s["resps"][0][0] for s in results["samples"]["toy_gen"]] == [d[0] for d in COPY_DOCS]
    assert results["results"]["toy_gen"]["exact_match,none"] == pytest.approx(0.75)
    assert lm.settings()["generation"]["top_p"] == 0.95


def test_dream_scoring_through_lm_eval(tokenizer, tasks_dir):
    toy = CopyToy(tokenizer)
    lm = DiffusionLM(pretrained=toy, tokenizer=tokenizer, scoring="dream", mc_num=32,
                     mc_batch_size=8, batch_size=16)
    results = evaluate(lm, tasks_dir, ["toy_mc"])
    assert results["results"]["toy_mc"]["acc,none"] == pytest.approx(0.75)
    for sample in results["samples"]["toy_mc"]:
        source, choices, _ = COPY_DOCS[sample["doc_id"]]
        context = list(tokenizer.encode(f"copy #{source}="))
        for choice, resp in zip(choices, sample["resps"]):
            # the backend's score is Dream's estimator on the request's tokens, EOS appended
            expected = dream_loglikelihood(toy, [context], [list(tokenizer.encode(choice))],
                                           mask_id=MASK_ID, eos_id=EOS_ID, mc_num=32,
                                           mc_batch_size=8, seed=0)[0]
            assert resp[0][0] == pytest.approx(expected, rel=1e-9, abs=1e-9)
            if all(k < len(source) and c == source[k] for k, c in enumerate(choice)):
                # copied tokens have log-probability near 0, so any unbiased estimate is too
                assert resp[0][0] == pytest.approx(copy_score(choice, source), abs=0.05)


def test_dream_sampler_refuses_settings_it_does_not_have(tokenizer):
    with pytest.raises(ValueError, match="Dream's sampler, which has no kv_cache"):
        DiffusionLM(pretrained=CopyToy(tokenizer), tokenizer=tokenizer, remasking="entropy", threshold=0.9)


@pytest.mark.parametrize("remasking", ["low_confidence", "entropy"])
def test_dream_checkpoint_results_do_not_depend_on_batch_size(remasking, dream_checkpoint, tasks_dir):
    # LLaDA's algorithms and Dream's own run on the shifted network alike; padding (left for
    # generation, right for scoring) must not reach any score or answer
    runs = []
    for batch_size in (1, 5):
        lm = DiffusionLM(pretrained=str(dream_checkpoint), scoring="dream", mc_num=8, mc_batch_size=4,
                         remasking=remasking, temperature=0.5, batch_size=batch_size)
        assert isinstance(lm.network, DreamForMaskedLM)
        runs.append(evaluate(lm, tasks_dir, ["toy_mc", "toy_gen"]))
    one, five = runs
    for doc in range(len(COPY_DOCS)):
        assert one["samples"]["toy_gen"][doc]["resps"] == five["samples"]["toy_gen"][doc]["resps"]
        scores_one = [r[0][0] for r in one["samples"]["toy_mc"][doc]["resps"]]
        scores_five = [r[0][0] for r in five["samples"]["toy_mc"][doc]["resps"]]
        assert scores_one == pytest.approx(scores_five, abs=1e-4), (scores_one, scores_five)
