"""The ``illada-eval`` command: evaluation by default, plus a few subcommands.

Each subcommand lives in its own module with a ``main(argv) -> int`` (or the function named after
a colon); this file only routes.
"""
from __future__ import annotations

import importlib
import sys

# subcommand -> "module" holding its ``main(argv)``, or "module:function"
SUBCOMMANDS = {
    "ls": "illada_eval.evaluate:list_main",
    "report": "illada_eval.report",
    "plot": "illada_eval.plot",
    "data": "illada_eval.data",
    "protocol": "illada_eval.protocol_card",
}
DEFAULT = "illada_eval.evaluate"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        target, argv = SUBCOMMANDS[argv[0]], argv[1:]
    else:
        target = DEFAULT
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function or "main")(argv)
