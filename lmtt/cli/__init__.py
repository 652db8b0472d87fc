"""The ``lmtt`` command line: one module per command group, each adding its subcommands."""

from __future__ import annotations

import argparse
import os
import sys

from lmtt.cli import (
    attention,
    batch,
    causal,
    common,
    contexts,
    diff,
    flow,
    heads,
    models,
    neurons,
    score,
)
from lmtt.errors import LmttError

GROUPS = (models, flow, diff, score, causal, neurons, attention, heads, batch, contexts)


def build_parser() -> argparse.ArgumentParser:
    parser = common.Parser(
        prog="lmtt", description="Information-flow interpretability for transformer LMs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; every error lmtt expects is one line on stderr and exit code 2."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for stream in (sys.stdout, sys.stderr):  # text from undecodable arguments prints escaped
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed
        return int(e.code or 0)
    try:
        return args.func(args)
    except LmttError as e:
        print(f"lmtt: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lmtt: interrupted (an index job resumes with the same command)", file=sys.stderr)
        return 130


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


if __name__ == "__main__":
    sys.exit(main())
