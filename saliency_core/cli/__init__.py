"""The ``saliency`` command: one sub-command per job (explain, train, evaluate, dashboard).

Each sub-command lives in ``saliency_core/cli/<name>_command.py`` with ``register(subparsers)``; its
handler returns an exit code. Errors meant for users are printed as one line, never a traceback.

Only the sub-command being run is imported (the others are listed by their one-line summary below), and no
command module imports torch before its handler starts: ``saliency --help`` and ``saliency <command> --help``
answer at once (``tests/test_packaging.py`` checks that they never import torch).
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: The sub-commands and the one line ``saliency --help`` shows for each.
COMMANDS = {
    "explain": "explain images with a saliency method",
    "train": "train a masker (Phang et al. FIX/CA, per-label or conditional)",
    "evaluate": "evaluate saliency methods over a data set",
    "dashboard": "start the Streamlit dashboard (offline, headless)",
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the sub-command it names is imported and given its flags (all of them
    without: what tests and documentation generators want)."""
    parser = argparse.ArgumentParser(prog="saliency", description="Masking-based saliency maps for image classifiers")
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = argv[0] if argv else None
    for name, summary in COMMANDS.items():
        if argv is not None and name != chosen:
            sub.add_parser(name, help=summary)  # listed in --help, never run in this process
            continue
        try:
            module = importlib.import_module(f"saliency_core.cli.{name}_command")
        except ModuleNotFoundError as exc:
            if exc.name == f"saliency_core.cli.{name}_command":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
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
