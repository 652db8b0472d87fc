"""``lmtt verify`` and ``lmtt patch``: causal evidence for routes, from real forward passes."""

from __future__ import annotations

import argparse
import csv
import io
import json

from lmtt.cli import common


def _thresholds(text: str) -> tuple[float, ...]:
    """An argparse type: comma-separated thresholds in [0, 1), at least two."""
    parse = common.real(0, 1, high_open=True)
    values = tuple(sorted({parse(x) for x in text.split(",") if x.strip()}))
    if len(values) < 2:
        raise argparse.ArgumentTypeError(f"give at least two thresholds, not {text!r}")
    return values


def _positions(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated token positions (0 or more)."""
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected positions like 0,1,2, not {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"positions must be 0 or more, not {text!r}")
    return values


def _setup(args):
    """(output folder, model, trace, metric) of a command, the output checked first."""
    from lmtt.models.trace import run_trace

    text = common.prompt(args)
    out = common.output_folder(args.out)
    model = common.load(args)
    trace = run_trace(model, text)
    return out, model, trace, common.metric(model, trace, args)


def _edges_csv(effects, measured, tokens) -> bytes:
    from lmtt.viz.text import node_label

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["edge", "kind", "source", "target", "weight", "effect", "attribution",
                "measured"])  # fmt: skip
    for i, e in enumerate(effects.edges):
        attr = "" if effects.attribution is None else f"{float(effects.attribution[i]):.6g}"
        w.writerow([e.id, e.kind, node_label(e.source, tokens), node_label(e.target, tokens),
                    f"{e.weight:.6g}", f"{float(effects.effect[i]):.6g}", attr,
                    bool(measured[i])])  # fmt: skip
    return buf.getvalue().encode()


def cmd_verify(args) -> int:
    from lmtt.causal.compare import agreement, measured
    from lmtt.causal.edges import verify_edges
    from lmtt.causal.faithfulness import CURVE, faithfulness
    from lmtt.causal.scored import route_graphs
    from lmtt.errors import EmptyRoutesError
    from lmtt.viz.causal_figures import effects_static, faithfulness_static
    from lmtt.viz.static import figure_png_svg

    out, model, trace, metric = _setup(args)
    thresholds = [args.threshold, *(args.curve or CURVE)]
    graph, *curve = route_graphs(model, trace, metric, thresholds, args.score, progress=True)
    if not graph.edges:
        raise EmptyRoutesError(
            f"No {args.score} route survives threshold {args.threshold}: lower --threshold.",
            max_threshold=0.0,
        )
    f = faithfulness(model, trace, [graph, *curve], metric)
    effects = verify_edges(model, trace, graph, metric, progress=True)
    span = f.clean - f.baseline
    kept = measured(effects, span, args.min_share)
    agree = agreement(effects, span, args.min_share)
    _print_verify(model, trace, metric, graph, f, effects, kept, agree)
    if out is not None:
        report = {
            "model": model.name, "tokens": list(trace.token_strs), "threshold": args.threshold,
            "score": graph.score,
            "metric": metric.to_json(trace.vocab), "clean": f.clean, "baseline": f.baseline,
            "completeness": f.completeness[0], "share_lost": f.complement[0],
            "curve": _curve_json(f, trace.vocab), "agreement": agree.to_json(),
            "edges": effects.rows(),
        }  # fmt: skip
        curve_png, curve_svg = figure_png_svg(faithfulness_static(f.without_first()))
        eff_png, eff_svg = figure_png_svg(effects_static(effects))
        common.write_files(out, {
            "verify.json": json.dumps(report, indent=1).encode(),
            "edges.csv": _edges_csv(effects, kept, graph.tokens),
            "faithfulness.png": curve_png, "faithfulness.svg": curve_svg,
            "effects.png": eff_png, "effects.svg": eff_svg,
        })  # fmt: skip
        common.console().print(
            f"wrote verify.json, edges.csv, faithfulness and effects plots to {out}"
        )
    return 0


def _curve_json(f, vocab) -> dict:
    curve = f.without_first().to_json(vocab)
    return {k: curve[k] for k in ("thresholds", "n_edges", "completeness", "complement",
                                  "completeness_area", "complement_area")}  # fmt: skip


def _print_verify(model, trace, metric, graph, f, effects, kept, agree) -> None:
    from rich.table import Table

    from lmtt.viz.text import node_label

    console = common.console()
    console.print(
        f"{metric.describe(trace.vocab)}: {f.clean:.3f} (every edge removed: {f.baseline:.3f})"
    )
    console.print(
        f"routes at threshold {graph.threshold}: {len(graph.edges)} edges; completeness "
        f"{f.completeness[0]:.3f} (only the routes kept), share lost {f.complement[0]:.3f} "
        f"(only the routes removed); {agree.without_effect} edges move the metric by less than "
        f"{agree.min_share:.0%} of its span"
    )
    console.print(
        f"Spearman: |{graph.score}| vs |effect| {agree.weight_vs_effect:.2f}, |attribution| vs "
        f"|effect| {agree.attribution_vs_effect:.2f}"
    )
    table = Table(title="Edges by measured effect (largest first)")
    score = f"{graph.score} share" if graph.signed else graph.score
    for col in ("source", "target", "kind", score, "attribution", "effect", ""):
        table.add_column(col, justify="left" if col in ("source", "target", "kind", "")
                         else "right")  # fmt: skip
    order = effects.effect.abs().argsort(descending=True).tolist()
    for i in order[:30]:
        e = effects.edges[i]
        mark = "" if kept[i] else "no effect"
        table.add_row(node_label(e.source, graph.tokens), node_label(e.target, graph.tokens),
                      e.kind, f"{e.weight:.3f}", f"{float(effects.attribution[i]):.3f}",
                      f"{float(effects.effect[i]):.3f}", mark)  # fmt: skip
    console.print(table)


def cmd_patch(args) -> int:
    from lmtt.causal.patching import patching_effects
    from lmtt.viz.causal_figures import patching_static
    from lmtt.viz.static import figure_png_svg

    counterfactual = common.prompt(args, "counterfactual")  # before the model loads
    out, model, trace, metric = _setup(args)
    p = patching_effects(model, trace, counterfactual, metric, args.what, args.align,
                         progress=True)  # fmt: skip
    console = common.console()
    console.print(
        f"{metric.describe(trace.vocab)}: clean {p.clean:.3f}, counterfactual "
        f"{p.counterfactual:.3f}; share of the change each patched {args.what} node carries:"
    )
    _print_share(console, p, trace)
    if out is not None:
        png, svg = figure_png_svg(patching_static(p, list(trace.token_strs)))
        common.write_files(out, {
            "patch.json": json.dumps(p.to_json(trace.vocab), indent=1).encode(),
            "patch.png": png, "patch.svg": svg,
        })  # fmt: skip
        console.print(f"wrote patch.json, patch.png and patch.svg to {out}")
    return 0


def _print_share(console, p, trace) -> None:
    from rich.table import Table

    from lmtt.viz.text import token_label

    table = Table()
    table.add_column("layer", justify="right")
    columns = (range(trace.n_heads) if p.what == "heads"
               else [token_label(t, 8) for t in trace.token_strs])  # fmt: skip
    for c in columns:
        table.add_column(f"h{c}" if p.what == "heads" else str(c), justify="right")
    for layer, row in enumerate(p.share.tolist()):
        table.add_row(str(layer), *[f"{v:.2f}" for v in row])
    console.print(table)


def add_commands(sub) -> None:
    p = common.command(sub, "verify", "knock out every route edge; completeness curves",
                       cmd_verify, prompt=True)  # fmt: skip
    common.metric_args(p)
    p.add_argument("--threshold", type=common.real(0, 1, high_open=True), default=0.04)
    p.add_argument(
        "--score",
        choices=common.SCORES,
        default="proximity",
        help="the routes to verify (by their edge score)",
    )
    p.add_argument("--curve", type=_thresholds, default=None,
                   help="comma-separated thresholds of the faithfulness curve (default: "
                   "0.01,0.02,0.03,0.04,0.06,0.08,0.1,0.15,0.2,0.3)")  # fmt: skip
    p.add_argument("--min-share", type=common.real(0, 1), default=0.01,
                   help="an edge has an effect when it moves the metric by this share")  # fmt: skip
    p.add_argument("--out", default=None, help="folder for JSON, CSV and plots")

    p = common.command(sub, "patch", "patch each node from a counterfactual prompt",
                       cmd_patch, prompt=True)  # fmt: skip
    common.metric_args(p)
    p.add_argument("--counterfactual", default=None, help="the counterfactual prompt")
    p.add_argument("--counterfactual-file", default=None, metavar="FILE",
                   help="read the counterfactual prompt from a UTF-8 text file")  # fmt: skip
    p.add_argument(
        "--align", type=_positions, default=None,
        help="comma-separated counterfactual position for each clean position",
    )  # fmt: skip
    p.add_argument("--what", choices=["resid", "attn", "mlp", "heads"], default="resid")
    p.add_argument("--out", default=None, help="folder for JSON and the heatmap")
