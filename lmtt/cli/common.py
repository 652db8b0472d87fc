"""What every command shares: the console, the model options, and errors as exit code 2."""

from __future__ import annotations

import argparse
import sys


def console():
    from rich.console import Console

    return Console(width=min(100, Console().width) if sys.stdout.isatty() else 100)


def command(sub, name: str, help: str, func, model: bool = True, prompt: bool = False):
    """Add the subcommand ``name`` running ``func``; with ``model``, the model options; with
    ``prompt``, the prompt argument. Returns the parser for the command's own options."""
    parser = sub.add_parser(name, help=help)
    if model:
        add_model_args(parser)
    if prompt:
        parser.add_argument("prompt")
    parser.set_defaults(func=func)
    return parser


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", "-m", default=None, help="name from configs/models.yaml, hub name or folder"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])


def load(args):
    """The model named by ``--model`` (default: the catalog's default) on ``--device``."""
    from lmtt.models import load_model
    from lmtt.models.catalog import load_model_catalog

    name = args.model or load_model_catalog().default
    return load_model(name, device=args.device, dtype=args.dtype)
