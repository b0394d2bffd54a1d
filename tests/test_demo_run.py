"""The README's main job replaces the demo's earlier results only after its new run succeeded."""
from pathlib import Path

import pytest

from illada_eval import demo_run


@pytest.fixture
def steps(monkeypatch, tmp_path):
    """Every step stubbed: evaluations write a results file (or fail), reports record the files."""
    monkeypatch.chdir(tmp_path)
    calls = {"evaluate_status": 0, "seen_by_report": None}

    def evaluate(args):
        folder = Path(args[args.index("--output-path") + 1]) / "demo"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"results_new{len(list(folder.iterdir()))}.json").write_text("{}")
        return calls["evaluate_status"]

    def report(args):
        calls["seen_by_report"] = sorted(p.name for p in Path(demo_run.OUTPUT).glob("**/*.json"))
        return 0

    monkeypatch.setattr(demo_run.data, "main", lambda args: 0)
    monkeypatch.setattr(demo_run.evaluate, "main", evaluate)
    monkeypatch.setattr(demo_run.report, "main", report)
    monkeypatch.setattr(demo_run.plot, "main", lambda args: 0)
    old = Path(demo_run.OUTPUT) / "demo" / "results_old.json"
    old.parent.mkdir(parents=True)
    old.write_text("{}")
    return calls, old


def test_earlier_demo_results_are_replaced_after_a_successful_run(steps):
    calls, old = steps
    assert demo_run.main() == 0
    assert not old.exists()
    assert calls["seen_by_report"] == ["results_new1.json", "results_new2.json"]


def test_a_failed_evaluation_keeps_the_earlier_results(steps):
    calls, old = steps
    calls["evaluate_status"] = 3
    assert demo_run.main() == 3
    assert old.exists() and calls["seen_by_report"] is None
