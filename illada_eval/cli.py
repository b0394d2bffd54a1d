"""The ``illada-eval`` command: evaluation by default, plus a few subcommands.

Each subcommand lives in its own module with a ``main(argv) -> int``; this file only routes.
"""
from __future__ import annotations

import importlib
import sys

# subcommand -> module holding its ``main(argv)``
SUBCOMMANDS = {
    "report": "illada_eval.report",
    "plot": "illada_eval.plot",
    "data": "illada_eval.data",
}
DEFAULT = "illada_eval.evaluate"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        module, argv = SUBCOMMANDS[argv[0]], argv[1:]
    else:
        module = DEFAULT
    return importlib.import_module(module).main(argv)
