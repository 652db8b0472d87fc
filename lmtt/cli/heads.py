"""``lmtt heads``: the head catalogue (every head scored for the classic head types)."""

from __future__ import annotations

import json
from pathlib import Path

from lmtt.cli import common


def _prompts(path: str | None) -> list[str]:
    """The prompts of a prompt file (lmtt.corpus.prompt_files), or the example prompts."""
    if path is None:
        from lmtt.config import example_prompts

        return example_prompts()
    from lmtt.corpus.prompt_files import read_prompt_file

    return [row.prompt for row in read_prompt_file(path)]


def _same_model(a: str, b: str) -> bool:
    """Whether two model names name one model (local folders compared as resolved paths)."""
    if Path(a).is_dir() and Path(b).is_dir():
        return Path(a).resolve() == Path(b).resolve()
    return a == b


def cmd_heads(args) -> int:
    from lmtt.attention.heads import head_catalogue

    prompts = _prompts(args.prompts)
    out = common.output_folder(args.out)
    batch = None
    if args.batch:
        from lmtt.index.batch import BatchError
        from lmtt.index.batch_store import open_batch

        batch = open_batch(args.batch)  # a bad folder is refused before the model loads
        made_with = batch.manifest["model"]
        if args.model is None:
            args.model = made_with  # the batch's model, unless one is named
        elif not _same_model(args.model, made_with):
            raise BatchError(
                f"{args.batch} is a batch of {made_with}, not {args.model}: pass "
                f"--model {made_with}, or a batch made with {args.model}."
            )
    model = common.load(args)
    catalogue = head_catalogue(model, prompts, args.random, args.length)
    if batch is not None:
        catalogue = catalogue.with_batch(batch.head_summary())
    for axis in (args.x, args.y):
        catalogue.top(axis, 1)  # an axis of a batch metric without --batch is refused
    _print(catalogue, args.top_k)
    if out is not None:
        _write(out, catalogue, args.x, args.y)
    return 0


def _print(catalogue, k: int) -> None:
    from rich.table import Table

    table = Table(title=f"Top {k} heads per metric ({len(catalogue.prompts)} prompts, "
                  f"{len(catalogue.random_sequences)} repeated random sequences)")  # fmt: skip
    table.add_column("metric")
    table.add_column("heads (highest first; entropy: lowest)")
    for m in catalogue.names:
        top = catalogue.top(m, k)
        table.add_row(m, "  ".join(f"L{layer}H{head} {v:.2f}" for layer, head, v in top))
    common.console().print(table)


def _write(out: Path, catalogue, x: str, y: str) -> None:
    from lmtt.viz.head_figures import head_scatter_static
    from lmtt.viz.static import figure_png_svg

    rows = catalogue.rows()
    report = {"model": catalogue.model, "prompts": list(catalogue.prompts),
              "random_sequences": catalogue.random_sequences.tolist(), "heads": rows}  # fmt: skip
    png, svg = figure_png_svg(head_scatter_static(catalogue, x, y))
    common.write_files(out, {"heads.csv": common.csv_bytes(rows), "heads.png": png,
                             "heads.svg": svg,
                             "heads.json": json.dumps(report, indent=1).encode()})  # fmt: skip
    common.console().print(f"wrote heads.csv, heads.json, heads.png and heads.svg to {out}")


def add_commands(sub) -> None:
    from lmtt.attention.head_names import BATCH_METRICS, METRICS

    p = common.command(sub, "heads", "the head catalogue: previous-token, induction, "
                       "duplicate-token, first-token heads and entropy", cmd_heads)  # fmt: skip
    p.add_argument("--prompts", default=None, metavar="FILE",
                   help=".txt (one prompt a line), or .jsonl/.csv with 'prompt' (default: "
                   "the example prompts)")  # fmt: skip
    p.add_argument(
        "--random",
        type=common.count(1),
        default=4,
        help="repeated random sequences for induction and duplicate-token scores",
    )
    p.add_argument("--length", type=common.count(2), default=24,
                   help="tokens in each random sequence (repeated once)")  # fmt: skip
    p.add_argument("--top-k", type=common.count(1), default=5)
    p.add_argument("--batch", default=None, metavar="DIR",
                   help="a batch folder (lmtt batch): add each head's route share and mean "
                   "contribution over its prompts")  # fmt: skip
    axes = METRICS + BATCH_METRICS
    p.add_argument("--x", choices=axes, default="previous_token", help="the plot's x axis")
    p.add_argument("--y", choices=axes, default="induction", help="the plot's y axis")
    p.add_argument("--out", default=None, help="folder for CSV, JSON and the scatter plot")
