"""``illada-train RECIPE [--key value ...]``: train with a YAML recipe, keys overridable.

RECIPE is a YAML file or the name of a bundled recipe (pretrain, sft-llada, sft-illada, demo).
The same command runs under ``torchrun`` / ``accelerate launch`` for several processes, e.g.
``accelerate launch --num_processes 8 -m illada_eval.train.cli pretrain --data_files a.jsonl``.
"""
from __future__ import annotations

import dataclasses
import sys

from .config import FIELD_TYPES, RECIPES_DIR, TrainConfig, load_config

USAGE = "usage: illada-train RECIPE [--key value ...]   (illada-train --help lists the keys)"


def help_text() -> str:
    recipes = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
    lines = [USAGE, "", f"bundled recipes: {recipes}", "", "keys (recipe value, else this default):"]
    for field in dataclasses.fields(TrainConfig):
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        kind = FIELD_TYPES[field.name]
        hint = kind.__name__ if isinstance(kind, type) else str(kind).replace("typing.", "")
        lines.append(f"  --{field.name:<24} {hint:<22} default: {default!r}")
    lines.append("  --model.KEY VALUE          sets one ILLaDAConfig field of a fresh model")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(help_text())
        return 0 if argv else 2
    recipe, overrides = (None, argv) if argv[0].startswith("--") else (argv[0], argv[1:])
    try:
        config = load_config(recipe, overrides)
        from .trainer import train  # after the config is known good: importing the stack is slow

        result = train(config)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"illada-train: error: {error}", file=sys.stderr)
        return 2
    if result.is_main_process:
        print(f"trained {result.steps} steps, final loss {result.final_loss:.4f}; checkpoint: {result.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
