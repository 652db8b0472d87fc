"""The ``lmtt`` command line: one module per command group, each adding its subcommands."""

from __future__ import annotations

import argparse
import os
import sys

from lmtt.cli import attention, contexts, flow, models, neurons
from lmtt.errors import LmttError

GROUPS = (models, flow, neurons, attention, contexts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmtt", description="Information-flow interpretability for transformer LMs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LmttError as e:
        print(f"lmtt: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
