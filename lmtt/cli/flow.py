"""``lmtt trace`` and ``lmtt routes``: a prediction, its logit lens and its routes."""

from __future__ import annotations

from lmtt.cli import common
from lmtt.errors import check_index


def cmd_trace(args) -> int:
    from rich.table import Table

    from lmtt.flow.lens import residual_lens, top_tokens
    from lmtt.models.trace import run_trace
    from lmtt.viz.text import percent, token_label

    text = common.prompt(args)
    console = common.console()
    model = common.load(args)
    trace = run_trace(model, text)
    d = model.dims
    pos = check_index("Token position", args.position, trace.n_tokens, negative=True)
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


def _graph(args, model, trace):
    """The routes by the score ``--score`` names (printing the metric of a signed score)."""
    from lmtt.flow.graph import kernel_device, routes

    if args.score == "proximity":
        return routes(trace, args.target, args.threshold, args.renormalize, args.memory_mb,
                      device=kernel_device(model.device))  # fmt: skip
    from lmtt.causal.scored import routes as scored_routes

    metric = common.metric(model, trace, args)
    common.console().print(f"edge score: {args.score} share of {metric.describe(trace.vocab)}")
    return scored_routes(model, trace, metric, args.threshold, args.score, progress=True)


def _routes_table(graph, threshold: float):
    from rich.table import Table

    from lmtt.viz.text import node_label

    table = Table(
        title=f"Routes at threshold {threshold}: {len(graph.nodes)} nodes, "
        f"{len(graph.edges)} edges (top layer first)"
    )
    weight = "share" if graph.signed else "weight"
    for col in ("layer", "kind", "source", "target", weight, "top head"):
        table.add_column(col, justify="right" if col in ("layer", weight) else "left")
    for edge in reversed(graph.edges):
        h = edge.top_head
        head = "" if h is None else f"h{h} {edge.heads[h]:.3f}"
        ends = (node_label(edge.source, graph.tokens), node_label(edge.target, graph.tokens))
        table.add_row(str(edge.target.layer), edge.kind, *ends, f"{edge.weight:.3f}", head)
    return table


def cmd_routes(args) -> int:
    from lmtt.flow.lens import top_tokens
    from lmtt.io import atomic_write, check_output, disk_errors
    from lmtt.models.trace import run_trace
    from lmtt.viz.text import percent, token_label

    if args.renormalize is not None and args.score != "proximity":
        from lmtt.errors import RouteError

        raise RouteError("--renormalize applies to proximity weights only: drop it or use "
                         "--score proximity.")  # fmt: skip
    text = common.prompt(args)
    out = None if args.out is None else check_output(args.out, folder=False)
    console = common.console()
    model = common.load(args)
    if args.qk_edges:
        from lmtt.flow.qk_routes import with_qk_edges
        from lmtt.flow.score import score_kinds

        trace = run_trace(model, text, capture=score_kinds(model.family))
        graph = with_qk_edges(trace, _graph(args, model, trace))
    else:
        trace = run_trace(model, text)
        graph = _graph(args, model, trace)
    for pos in graph.target_positions:
        best = top_tokens(trace, trace.logits[pos], 1).top[0]
        what = f" predicts '{token_label(best.token)}' ({percent(best.prob)})"
        shown = what if trace.weights.has_lens else " (the model has no head to predict with)"
        console.print(f"position {pos} '{token_label(trace.token_strs[pos])}'{shown}")
    console.print(_routes_table(graph, args.threshold))
    if out is not None:
        with disk_errors(out):
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(out, graph.dumps().encode("utf-8"))
        console.print(f"wrote {out}")
    return 0


def add_commands(sub) -> None:
    p = common.command(
        sub, "trace", "next-token prediction and a per-layer logit lens", cmd_trace, prompt=True
    )
    p.add_argument("--top-k", type=common.count(1), default=10)
    p.add_argument("--lens-k", type=common.count(1), default=5)
    p.add_argument("--position", type=int, default=-1, help="token position (default: last)")

    p = common.command(
        sub, "routes", "information-flow routes to a prediction", cmd_routes, prompt=True
    )
    p.add_argument(
        "--threshold", type=common.real(0, 1, high_open=True), default=0.04,
        help="keep edges above this weight, in [0, 1)",
    )  # fmt: skip
    common.metric_args(p)
    p.add_argument(
        "--score", choices=common.SCORES, default="proximity",
        help="edge score: proximity (no forward passes; read: each part weighted by the "
        "share of it its reader reads), or a signed share of the metric estimated by gradients "
        "(attribution) or measured by removing each edge (knockout; verified: the proximity "
        "routes' edges with an effect)",
    )  # fmt: skip
    p.add_argument(
        "--renormalize",
        type=common.real(0, 1, high_open=True),
        default=None,
        metavar="T",
        help="zero contributions <= T and renormalise the rest (as LM-TT)",
    )
    p.add_argument(
        "--memory-mb", type=common.real(0, 1e7, low_open=True), default=512.0,
        help="working-memory budget",
    )  # fmt: skip
    p.add_argument(
        "--qk-edges", action="store_true",
        help="add key and query edges: the parts that made each attention edge's score",
    )  # fmt: skip
    p.add_argument("--out", default=None, help="write the routes as JSON to this file")
