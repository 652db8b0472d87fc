"""``lmtt qk``: why a head attends where it does (its score split over upstream parts)."""

from __future__ import annotations

import json

from lmtt.cli import common


def cmd_qk(args) -> int:
    from lmtt.flow.score import score_decomposition, score_kinds
    from lmtt.models.trace import run_trace

    text = common.prompt(args)
    out = common.output_folder(args.out)
    model = common.load(args)
    trace = run_trace(model, text, capture=score_kinds(model.family))
    query = trace.n_tokens - 1 if args.query is None else args.query
    s = score_decomposition(trace, args.layer, args.head, query, args.key, args.vs)
    _print(trace, s, args.top_k)
    if out is not None:
        _write(out, trace, s, args.top_k)
    return 0


def _print(trace, s, k: int) -> None:
    from rich.table import Table

    from lmtt.viz.score_figures import pair_labels
    from lmtt.viz.text import token_label

    console, tokens = common.console(), trace.token_strs
    weight = float(trace.pattern_rows(s.layer, [s.query])[s.head, 0, s.key])
    what = f"L{s.layer}H{s.head}: query {s.query} '{token_label(tokens[s.query])}', key {s.key} " \
        f"'{token_label(tokens[s.key])}'"  # fmt: skip
    if s.other is None:
        console.print(f"{what}: score {s.score:.4f} (attention weight {weight:.3f}); the "
                      f"{len(s.labels) ** 2} terms sum to {s.total:.4f}")  # fmt: skip
    else:
        console.print(f"{what} rather than {s.other} '{token_label(tokens[s.other])}': score "
                      f"difference {s.score:.4f}; the terms sum to {s.total:.4f}")  # fmt: skip
    table = Table(title=f"Top {k} (query part × key part) terms")
    table.add_column("query part × key part")
    table.add_column("term", justify="right")
    for label, value in pair_labels(s, tokens, k):
        table.add_row(label, f"{value:+.4f}")
    console.print(table)
    groups, terms = s.grouped("layer")
    by_layer = Table(title="Summed by layer (rows: query side, columns: key side)")
    by_layer.add_column("")
    for g in groups:
        by_layer.add_column(g, justify="right")
    for g, row in zip(groups, terms.tolist(), strict=True):
        by_layer.add_row(g, *[f"{v:+.3f}" for v in row])
    console.print(by_layer)


def _write(out, trace, s, k: int) -> None:
    from lmtt.viz.score_figures import score_pairs_static
    from lmtt.viz.static import figure_png_svg

    report = {
        "model": trace.model_name, "tokens": list(trace.token_strs), "layer": s.layer,
        "head": s.head, "query": s.query, "key": s.key, "vs": s.other, "score": s.score,
        "labels": list(s.labels), "terms": s.terms.tolist(),
        "top_pairs": [{"query_part": q, "key_part": b, "term": v} for q, b, v in s.top_pairs(k)],
    }  # fmt: skip
    png, svg = figure_png_svg(score_pairs_static(s, trace.token_strs, k))
    common.write_files(out, {"qk.json": json.dumps(report, indent=1).encode(),
                             "qk.png": png, "qk.svg": svg})  # fmt: skip
    common.console().print(f"wrote qk.json, qk.png and qk.svg to {out}")


def add_commands(sub) -> None:
    p = common.command(sub, "qk", "why a head attends: its score split over upstream parts",
                       cmd_qk, prompt=True)  # fmt: skip
    p.add_argument("--layer", type=common.count(0), required=True)
    p.add_argument("--head", type=common.count(0), required=True)
    p.add_argument("--query", type=int, default=None, help="query position (default: the last)")
    p.add_argument("--key", type=int, required=True, help="key position")
    p.add_argument(
        "--vs", type=int, default=None, metavar="J2",
        help="a second key: explain score(key) - score(J2), what the softmax compares",
    )  # fmt: skip
    p.add_argument("--top-k", type=common.count(1), default=12)
    p.add_argument("--out", default=None, help="folder for JSON and the bar chart")
