"""Dream's sampler and likelihood picked through the ``illada`` backend's settings."""
import lm_eval
import pytest
from lm_eval.tasks import TaskManager

from illada_eval.adapter import DiffusionLM
from illada_eval.model.dream_likelihood import dream_loglikelihood
from lm_eval_fixtures import checkpoint, one_torch_thread, tasks_dir  # noqa: F401  (fixtures)
from lm_eval_fixtures import COPY_DOCS, EOS_ID, MASK_ID, CopyToy, char_tokenizer, copy_score


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


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
    lm = DiffusionLM(pretrained=toy, tokenizer=tokenizer, mc_scoring="dream", mc_num=32,
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
