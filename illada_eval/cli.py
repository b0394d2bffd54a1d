"""The ``illada-eval`` command: argparse subcommands, each in its own module.

A subcommand is one entry of :data:`SUBCOMMANDS`: its name, the module holding its
``main(argv) -> int`` (or ``"module:function"``) and the line ``illada-eval --help`` shows. Only
the chosen module is imported, so ``--help`` and ``ls`` answer without loading torch or lm-eval.
Without a subcommand the arguments are ``run``'s, as lm-eval's command does.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module holding ``main(argv)`` or "module:function", what it does)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("illada_eval.evaluate", "evaluate a model on tasks (the default: `illada-eval --model ...`)"),
    "ls": ("illada_eval.listing", "list the presets, their tasks and the task aliases"),
    "protocol": ("illada_eval.protocol_card", "print the protocol card: every setting behind each task's cell"),
    "data": ("illada_eval.data", "build or list the offline benchmark data mirror"),
    "report": ("illada_eval.report", "rebuild the leaderboard tables from published scores and runs"),
    "plot": ("illada_eval.plot", "draw the score-delta plots"),
}
DEFAULT = "run"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="illada-eval",
        description="Evaluation harness for masked diffusion language models on lm-evaluation-harness.",
        epilog="`illada-eval COMMAND --help` shows a command's options.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, summary) in SUBCOMMANDS.items():
        # the command's own parser (in its module) reads the rest of the arguments
        commands.add_parser(name, help=summary, add_help=False).add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        build_parser().print_help()
        return 0
    if argv[0] not in SUBCOMMANDS:
        argv = [DEFAULT, *argv]
    target, _ = SUBCOMMANDS[argv[0]]
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function or "main")(argv[1:])
