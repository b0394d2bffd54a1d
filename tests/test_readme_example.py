"""The README's lm-eval Python example runs exactly as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_simple_evaluate_example_runs_as_written(capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    (example,) = [block for block in blocks if "simple_evaluate" in block]
    exec(compile(example, str(README), "exec"), {})
    accuracy = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert accuracy > 0.6, f"the demo model answers its sanity task well above chance (25%), got {accuracy}"
