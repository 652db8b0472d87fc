"""``lmtt mask``, ``lmtt attention`` and ``lmtt qk-map``: the classic attention views."""

from __future__ import annotations

from lmtt.cli import common


def cmd_mask(args) -> int:
    from lmtt.viz.diagrams import mask_and_diagrams
    from lmtt.viz.text import percent

    text = common.prompt(args)
    folder = common.output_folder(args.diagrams)
    console = common.console()
    _refuse_without_mlm_head(args.model)
    model = common.load(args, masked_lm=True)
    for pred in mask_and_diagrams(model, text, args.top_k, folder):
        fillers = ", ".join(f"{tok} {percent(p)}" for tok, p in pred.fillers)
        console.print(f"position {pred.position}: {fillers}")
    if args.diagrams:
        console.print(f"wrote one diagram per layer and head, and index.html, to {args.diagrams}")
    return 0


def _refuse_without_mlm_head(spec: str | None) -> None:
    """Refuse a model saved without a masked-LM head from its config, before its weights
    load (the catalog's default masked LM needs no check)."""
    if spec is None:
        return
    from lmtt.errors import NoMlmHeadError
    from lmtt.models.loading import has_mlm_head_config

    if has_mlm_head_config(spec) is False:
        raise NoMlmHeadError(
            f"{spec} has no masked-LM head (its config names no *ForMaskedLM architecture), so "
            "it cannot fill in [MASK]. Use a model saved as *ForMaskedLM, e.g. bert-base-uncased."
        )


def cmd_attention(args) -> int:
    """Write the attention views of one prompt as files (HTML, SVG, PNG)."""
    from lmtt.attention.qk import qk_breakdown
    from lmtt.attention.views import capture_attention
    from lmtt.errors import check_index
    from lmtt.viz.head_view import head_view_html, head_view_svg
    from lmtt.viz.static import (
        attention_diagram,
        figure_bytes,
        figure_png_svg,
        head_view_static,
        model_view_static,
        qk_breakdown_static,
    )

    text = common.prompt(args)
    out = common.output_folder(args.out)
    model = common.load(args)
    trace = capture_attention(model, text)
    trace.check(args.layer, args.head)
    query = check_index("Token position", args.query, trace.n_tokens, negative=True)
    model_png, model_svg = figure_png_svg(model_view_static(trace))
    files = {
        "head_view.html": head_view_html(trace, args.layer).encode(),
        "head_view.svg": head_view_svg(trace, args.layer).encode(),
        "head_view.png": figure_bytes(head_view_static(trace, args.layer)),
        "model_view.png": model_png,
        "model_view.svg": model_svg,
        "head.png": figure_bytes(
            attention_diagram(
                trace.pattern(args.layer)[args.head],
                list(trace.token_strs),
                f"Attention of layer {args.layer}, head {args.head}",
            )
        ),
    }
    note = ""
    if trace.family.qk_refusal:  # the patterns are exact; the q.k breakdown is not yet
        note = f" (no q·k breakdown: {trace.family.qk_refusal})"
    else:
        b = qk_breakdown(trace, args.layer, args.head, query)
        files["qk.png"], files["qk.svg"] = figure_png_svg(qk_breakdown_static(b))
    common.write_files(out, files)
    common.console().print(f"wrote {', '.join(files)} to {out}{note}")
    return 0


def cmd_qk_map(args) -> int:
    """The query-key map of one head over a corpus, as interactive HTML, PNG and SVG."""
    from lmtt.attention.qk_map import corpus_query_key_map
    from lmtt.viz.attention_figures import qk_map_figure
    from lmtt.viz.static import figure_png_svg, qk_map_static

    out = common.output_folder(args.out)
    model = common.load(args)
    cm = corpus_query_key_map(
        model, args.corpus, args.layer, args.head, args.method, args.tokens, not args.quiet
    )
    html = qk_map_figure(cm.map, args.colour).to_html(include_plotlyjs=True)
    png, svg = figure_png_svg(qk_map_static(cm.map))
    common.write_files(out, {"qk_map.html": html.encode(), "qk_map.png": png, "qk_map.svg": svg})
    skipped = f"; {cm.skipped_long} longer than the context left out" if cm.skipped_long else ""
    common.console().print(
        f"mapped {cm.tokens:,} tokens of {cm.documents:,} documents{skipped} "
        f"({len(cm.map.points):,} points); wrote qk_map.html, qk_map.png, qk_map.svg to {out}"
    )
    return 0


def add_commands(sub) -> None:
    p = common.command(sub, "mask", "fill in [MASK] tokens with a masked LM (default: the demo "
                       "masked LM)", cmd_mask, prompt=True)  # fmt: skip
    p.add_argument("--top-k", type=common.count(1), default=5)
    p.add_argument("--diagrams", default=None, metavar="DIR", help="write per-head PNGs here")

    p = common.command(
        sub,
        "attention",
        "write head view, model view and q.k views as files",
        cmd_attention,
        prompt=True,
    )
    p.add_argument("--layer", type=common.count(0), default=0)
    p.add_argument("--head", type=common.count(0), default=0)
    p.add_argument("--query", type=int, default=-1, help="query position for q.k (default last)")
    p.add_argument("--out", required=True, help="folder for the files")

    p = common.command(
        sub, "qk-map", "one head's queries and keys over a corpus, in 2-D", cmd_qk_map
    )
    p.add_argument("--corpus", required=True, help=".txt, .jsonl or .conllu file or folder")
    p.add_argument("--layer", type=common.count(0), required=True)
    p.add_argument("--head", type=common.count(0), required=True)
    p.add_argument(
        "--tokens", type=common.count(1, 1_000_000), default=2000,
        help="map about this many tokens",
    )  # fmt: skip
    p.add_argument("--method", default="pca", choices=["pca", "tsne", "umap"])
    p.add_argument("--colour", default="kind", choices=["kind", "position"])
    p.add_argument("--out", required=True, help="folder for qk_map.html, .png and .svg")
    p.add_argument("--quiet", action="store_true")
