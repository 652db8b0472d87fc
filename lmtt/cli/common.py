"""What every command shares: the parser (one-line errors), bounded numbers, the prompt and
model options, output checks before any work, and errors as exit code 2."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from lmtt.errors import PromptError
from lmtt.io import atomic_write, check_output, disk_errors


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``lmtt trace: error: ... (see lmtt trace --help)``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def console():
    """Rich output: at most 100 columns on a terminal; piped or redirected, text is never
    wrapped (a hint or command line stays whole) and tables get 160 columns."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(width=min(100, Console().width))
    return Console(width=160, soft_wrap=True)


def count(low: int = 1, high: int | None = None):
    """An argparse type: a whole number in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be {bound}, not {value}")
        return value

    return parse


def real(low: float, high: float, high_open: bool = False, low_open: bool = False):
    """An argparse type: a finite number in [low, high] (either end open on request)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
        inside = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
        if not math.isfinite(value) or not inside:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            raise argparse.ArgumentTypeError(
                f"must be a number in {left}{low:g}, {high:g}{right}, not {text}"
            )
        return value

    return parse


def command(sub, name: str, help: str, func, model: bool = True, prompt: bool = False):
    """Add the subcommand ``name`` running ``func``; with ``model``, the model options; with
    ``prompt``, the prompt (an argument, or ``--prompt-file`` for long ones). Returns the
    parser for the command's own options."""
    parser = sub.add_parser(name, help=help)
    if model:
        add_model_args(parser)
    if prompt:
        parser.add_argument("prompt", nargs="?", default=None, help="the text (or --prompt-file)")
        parser.add_argument("--prompt-file", default=None, metavar="FILE",
                            help="read the prompt from a UTF-8 text file")  # fmt: skip
    parser.set_defaults(func=func)
    return parser


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", "-m", default=None, help="name from configs/models.yaml, hub name or folder"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])


def prompt(args, name: str = "prompt") -> str:
    """The prompt given as an argument or in ``--prompt-file`` (exactly one of them); with
    ``name`` "counterfactual", ``--counterfactual`` or ``--counterfactual-file``."""
    text, file = getattr(args, name), getattr(args, f"{name}_file")
    flag = f"--{name}-file"
    if (text is None) == (file is None):
        given = "as an argument" if name == "prompt" else f"with --{name}"
        raise PromptError(f"Give the {name} {given} or with {flag} FILE (not both).")
    if text is not None:
        return text
    path = Path(file)
    if not path.is_file():
        raise PromptError(f"{flag} {path} is not a file: pass a UTF-8 text file.")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise PromptError(
            f"{flag} {path} is not UTF-8 text (byte {e.start}); save it as UTF-8."
        ) from None


def load(args, masked_lm: bool = False):
    """The model named by ``--model`` on ``--device``; by default the catalog's default (its
    masked LM when ``masked_lm``)."""
    from transformers.utils import logging

    from lmtt.models import load_model
    from lmtt.models.catalog import load_model_catalog

    logging.disable_progress_bar()  # stderr holds lmtt's own progress and errors only

    name = args.model
    if name is None:  # a folder or hub name given needs no catalog
        catalog = load_model_catalog()
        name = (catalog.masked_lm if masked_lm else "") or catalog.default
    return load_model(name, device=args.device, dtype=args.dtype)


def print_frame(frame) -> None:
    """A pandas DataFrame as a table (floats to 4 places)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    for col in frame.columns:
        table.add_column(str(col), justify="right" if frame[col].dtype.kind in "if" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(
            *[
                f"{v:.4f}" if isinstance(v, float) else escape(str(v).replace("\n", "⏎"))
                for v in row
            ]  # prompt text is text, not Rich markup
        )
    console().print(table)


def output_folder(path: str | None) -> Path | None:
    """An optional output folder, checked before any work."""
    return None if path is None else check_output(path, folder=True)


def csv_bytes(rows: list[dict]) -> bytes:
    """Rows of dicts (one key set, the first row's) as UTF-8 CSV with a header."""
    import csv
    import io

    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode("utf-8")


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write the already-rendered files into ``folder``, each atomically."""
    with disk_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            atomic_write(folder / name, data)


SCORES = ("proximity", "attribution", "knockout", "verified", "read")  # lmtt.causal.scored.SCORES


def metric_args(p, default_kind: str = "logprob") -> None:
    """The options naming what an intervention changes (lmtt.causal.metric)."""
    p.add_argument("--metric", choices=["logprob", "logit", "contrast"], default=default_kind)
    p.add_argument("--token", default=None, help="target token (text or id; default: the top)")
    p.add_argument("--foil", default=None, help="foil token: the metric becomes the contrast")
    p.add_argument(
        "--target", type=int, default=None,
        help="position of the prediction (default: the last, or the first [MASK])",
    )  # fmt: skip


def _token(text):
    """A token given as an id (digits) or as text."""
    return None if text is None else int(text) if text.isdigit() else text


def metric(model, trace, args):
    """The metric the options of :func:`metric_args` name."""
    from lmtt.causal.metric import make_metric

    target, foil = _token(args.token), _token(args.foil)
    return make_metric(model, trace, args.metric, target, foil, args.target)
