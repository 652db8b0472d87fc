"""``lmtt diff``: the routes of two prompts compared (edges only in one, weight changes)."""

from __future__ import annotations

import json

from lmtt.cli import common


def cmd_diff(args) -> int:
    from lmtt.flow.diff import diff_routes
    from lmtt.flow.graph import routes
    from lmtt.models.trace import run_trace

    a_text, b_text = common.prompt(args), common.prompt(args, "vs")
    out = common.output_folder(args.out)
    model = common.load(args)
    graphs = [routes(run_trace(model, text), threshold=args.threshold) for text in (a_text, b_text)]
    d = diff_routes(*graphs)
    _print(d, args.top_k)
    if out is not None:
        _write(out, d, model.dims.n_layers)
    return 0


def _print(d, k: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    from lmtt.viz.text import node_label as raw_label

    def node_label(node, tokens) -> str:  # a token is text, not Rich markup
        return escape(raw_label(node, tokens))

    console, tokens = common.console(), d.graph().tokens  # A's tokens, "A|B" where they differ
    console.print(f"A: {len(d.a.edges)} edges, B: {len(d.b.edges)} edges at threshold "
                  f"{d.a.threshold}; {len(d.only_a)} only in A, {len(d.only_b)} only in B, "
                  f"{len(d.both)} in both (B shifted by {d.shift} positions)")  # fmt: skip
    for title, edges in (("Only in A", d.only_a), ("Only in B", d.only_b)):
        table = Table(title=f"{title} (largest first)")
        for col in ("kind", "source", "target", "weight"):
            table.add_column(col, justify="right" if col == "weight" else "left")
        for e in sorted(edges, key=lambda e: -abs(e.weight))[:k]:
            table.add_row(e.kind, node_label(e.source, tokens), node_label(e.target, tokens),
                          f"{e.weight:.3f}")  # fmt: skip
        console.print(table)
    table = Table(title="Largest weight changes of the shared edges")
    for col in ("kind", "source", "target", "A", "B", "B - A"):
        table.add_column(col, justify="right" if col in ("A", "B", "B - A") else "left")
    for e, wa, wb in d.changes(k):
        table.add_row(e.kind, node_label(e.source, tokens), node_label(e.target, tokens),
                      f"{wa:.3f}", f"{wb:.3f}", f"{wb - wa:+.3f}")  # fmt: skip
    console.print(table)


def _write(out, d, n_layers: int) -> None:
    from lmtt.viz.graph_svg import route_svg

    def rows(edges):
        return [e.to_json() for e in edges]

    changes = [{"edge": e.id, "a": wa, "b": wb} for e, wa, wb in d.changes()]
    report = {"a": d.a.to_json(), "b": d.b.to_json(), "shift": d.shift, "changes": changes,
              "only_a": rows(d.only_a), "only_b": rows(d.only_b),
              "outside": rows(d.outside)}  # fmt: skip
    title = "B minus A: violet where A leans on an edge more, coloured where B does"
    svg = route_svg(d.graph(), n_layers, title)
    common.write_files(out, {"diff.json": json.dumps(report, ensure_ascii=False).encode(),
                             "diff.svg": svg.encode()})  # fmt: skip
    common.console().print(f"wrote diff.json and diff.svg to {out}")


def add_commands(sub) -> None:
    p = common.command(sub, "diff", "the routes of two prompts compared, on one graph", cmd_diff,
                       prompt=True)  # fmt: skip
    p.add_argument("--vs", default=None, help="the second prompt (B)")
    p.add_argument("--vs-file", default=None, metavar="FILE", help="read B from a text file")
    p.add_argument("--threshold", type=common.real(0, 1, high_open=True), default=0.04)
    p.add_argument("--top-k", type=common.count(1), default=8)
    p.add_argument("--out", default=None, help="folder for diff.json and diff.svg")
