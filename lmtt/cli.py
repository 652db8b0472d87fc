"""The ``lmtt`` command line."""

from __future__ import annotations

import argparse
import os
import sys

from lmtt.errors import LmttError


def _console():
    from rich.console import Console

    return Console(width=min(100, Console().width) if sys.stdout.isatty() else 100)


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", "-m", default=None, help="name from configs/models.yaml, hub name or folder"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])


def _load(args):
    from lmtt.config import load_model_catalog
    from lmtt.models import load_model

    name = args.model or load_model_catalog().default
    return load_model(name, device=args.device, dtype=args.dtype)


def cmd_trace(args) -> int:
    from rich.table import Table

    from lmtt.lens import residual_lens, top_tokens
    from lmtt.trace import run_trace
    from lmtt.viz.text import percent, token_label

    console = _console()
    model = _load(args)
    trace = run_trace(model, args.prompt)
    d = model.dims
    pos = args.position if args.position >= 0 else trace.n_tokens + args.position
    if not 0 <= pos < trace.n_tokens:
        last = trace.n_tokens - 1
        raise LmttError(f"--position {args.position} is outside the prompt (0..{last})")
    console.print(
        f"[bold]{model.name}[/] ({d.family}, {d.n_layers} layers x {d.n_heads} heads, "
        f"d_model {d.d_model}) on {model.device}: {trace.n_tokens} tokens"
    )
    console.print("tokens: " + " | ".join(token_label(t) for t in trace.token_strs))
    after = token_label(trace.token_strs[pos])
    after_q = f"'{after}'"
    table = Table(title=f"Top {args.top_k} next tokens after {after_q} (position {pos})")
    table.add_column("#", justify="right")
    table.add_column("token")
    table.add_column("probability", justify="right")
    table.add_column("logit", justify="right")
    for rank, s in enumerate(top_tokens(trace, trace.logits[pos], args.top_k).top, start=1):
        table.add_row(str(rank), token_label(s.token), percent(s.prob), f"{s.logit:.2f}")
    console.print(table)
    lens = Table(title=f"Logit lens at position {pos} ({after_q}): top {args.lens_k} per layer")
    lens.add_column("state")
    lens.add_column("top tokens (probability)", overflow="fold")
    for label, result in residual_lens(trace, pos, args.lens_k):
        cells = [f"{token_label(s.token, 12)} {percent(s.prob)}" for s in result.top]
        lens.add_row(label, "  ".join(cells))
    console.print(lens)
    return 0


def cmd_routes(args) -> int:
    from pathlib import Path

    from rich.table import Table

    from lmtt.graph import routes
    from lmtt.lens import top_tokens
    from lmtt.trace import run_trace
    from lmtt.viz.text import node_label, percent, token_label

    console = _console()
    model = _load(args)
    trace = run_trace(model, args.prompt)
    graph = routes(trace, args.target, args.threshold, args.renormalize, args.memory_mb)
    for pos in graph.target_positions:
        best = top_tokens(trace, trace.logits[pos], 1).top[0]
        console.print(
            f"position {pos} '{token_label(trace.token_strs[pos])}' predicts "
            f"'{token_label(best.token)}' ({percent(best.prob)})"
        )
    table = Table(
        title=f"Routes at threshold {args.threshold}: {len(graph.nodes)} nodes, "
        f"{len(graph.edges)} edges (top layer first)"
    )
    for col, justify in (
        ("layer", "right"),
        ("kind", "left"),
        ("source", "left"),
        ("target", "left"),
        ("weight", "right"),
        ("top head", "left"),
    ):
        table.add_column(col, justify=justify)
    for edge in reversed(graph.edges):
        h = edge.top_head
        head = "" if h is None else f"h{h} {edge.heads[h]:.3f}"
        table.add_row(
            str(edge.target.layer),
            edge.kind,
            node_label(edge.source, graph.tokens),
            node_label(edge.target, graph.tokens),
            f"{edge.weight:.3f}",
            head,
        )
    console.print(table)
    if args.out:
        Path(args.out).write_text(graph.dumps(), encoding="utf-8")
        console.print(f"wrote {args.out}")
    return 0


def cmd_models(args) -> int:
    from rich.table import Table

    from lmtt.config import load_model_catalog

    catalog = load_model_catalog()
    table = Table(title="Models offered by name (configs/models.yaml)")
    for col in ("name", "weights", "description"):
        table.add_column(col)
    for m in catalog.models:
        default = " (default)" if m.name == catalog.default else ""
        table.add_row(m.name + default, m.availability(), m.description)
    _console().print(table)
    print("Any hub name or local Hugging Face folder works too: lmtt ... --model NAME_OR_FOLDER")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmtt", description="Information-flow interpretability for transformer LMs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("trace", help="next-token prediction and a per-layer logit lens")
    _add_model_args(p)
    p.add_argument("prompt")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--lens-k", type=int, default=5)
    p.add_argument("--position", type=int, default=-1, help="token position (default: last)")
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("routes", help="information-flow routes to a prediction")
    _add_model_args(p)
    p.add_argument("prompt")
    p.add_argument("--threshold", type=float, default=0.04, help="keep edges above this weight")
    p.add_argument("--target", type=int, default=None, help="token position (default: last)")
    p.add_argument(
        "--renormalize",
        type=float,
        default=None,
        metavar="T",
        help="zero contributions <= T and renormalise the rest (as LM-TT)",
    )
    p.add_argument("--memory-mb", type=float, default=512.0, help="working-memory budget")
    p.add_argument("--out", default=None, help="write the routes as JSON to this file")
    p.set_defaults(func=cmd_routes)

    p = sub.add_parser("models", help="the models offered by name, and where their weights are")
    p.set_defaults(func=cmd_models)

    from lmtt import cli_attention, cli_index

    cli_index.add_commands(sub, _add_model_args)
    cli_attention.add_commands(sub, _add_model_args)
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
