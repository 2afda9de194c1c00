"""The ``saliency`` command: one sub-command per job (explain, train, evaluate, dashboard).

Each sub-command lives in ``saliency_core/cli/<name>_command.py`` with ``register(subparsers)``; its
handler returns an exit code. Errors meant for users are printed as one line, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("explain", "train", "evaluate", "dashboard")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="saliency", description="Masking-based saliency maps for image classifiers")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"saliency_core.cli.{name}_command")
        except ModuleNotFoundError as exc:
            if exc.name == f"saliency_core.cli.{name}_command":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, FloatingPointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
