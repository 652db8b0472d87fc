"""The attention commands: mask, attention, qk-map, index-contexts and contexts."""

from __future__ import annotations

from pathlib import Path


def cmd_mask(args) -> int:
    from lmtt.cli import _console, _load
    from lmtt.masked_lm import mask_and_diagrams
    from lmtt.viz.text import percent

    console = _console()
    model = _load(args)
    for pred in mask_and_diagrams(model, args.prompt, args.top_k, args.diagrams):
        fillers = ", ".join(f"{tok} {percent(p)}" for tok, p in pred.fillers)
        console.print(f"position {pred.position}: {fillers}")
    if args.diagrams:
        console.print(f"wrote one diagram per layer and head, and index.html, to {args.diagrams}")
    return 0


def cmd_attention(args) -> int:
    """Write the attention views of one prompt as files (HTML, SVG, PNG)."""
    from lmtt.attention import qk_breakdown
    from lmtt.attention_trace import capture_attention
    from lmtt.cli import _console, _load
    from lmtt.viz.head_view import head_view_html, head_view_svg
    from lmtt.viz.static import (
        attention_diagram,
        figure_bytes,
        figure_png_svg,
        head_view_static,
        model_view_static,
        qk_breakdown_static,
    )

    model = _load(args)
    at = capture_attention(model, args.prompt)
    at.check(args.layer, args.head)
    query = args.query if args.query >= 0 else at.n_tokens + args.query
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    b = qk_breakdown(at, args.layer, args.head, query)
    model_png, model_svg = figure_png_svg(model_view_static(at))
    qk_png, qk_svg = figure_png_svg(qk_breakdown_static(b))
    files = {
        "head_view.html": head_view_html(at, args.layer).encode(),
        "head_view.svg": head_view_svg(at, args.layer).encode(),
        "head_view.png": figure_bytes(head_view_static(at, args.layer)),
        "model_view.png": model_png,
        "model_view.svg": model_svg,
        "head.png": figure_bytes(
            attention_diagram(at.patterns[args.layer, args.head], list(at.token_strs), "")
        ),
        "qk.png": qk_png,
        "qk.svg": qk_svg,
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    _console().print(f"wrote {', '.join(files)} to {out}")
    return 0


def cmd_qk_map(args) -> int:
    """The query-key map of one head over a corpus, as interactive HTML, PNG and SVG."""
    from lmtt.cli import _console, _load
    from lmtt.qk_corpus import corpus_query_key_map
    from lmtt.viz.attention_figures import qk_map_figure
    from lmtt.viz.static import figure_png_svg, qk_map_static

    model = _load(args)
    cm = corpus_query_key_map(
        model, args.corpus, args.layer, args.head, args.method, args.tokens, not args.quiet
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    qk_map_figure(cm.map, args.colour).write_html(out / "qk_map.html", include_plotlyjs=True)
    png, svg = figure_png_svg(qk_map_static(cm.map))
    (out / "qk_map.png").write_bytes(png)
    (out / "qk_map.svg").write_bytes(svg)
    skipped = f"; {cm.skipped_long} longer than the context left out" if cm.skipped_long else ""
    _console().print(
        f"mapped {cm.tokens:,} tokens of {cm.documents:,} documents{skipped} "
        f"({len(cm.map.points):,} points); wrote qk_map.html, qk_map.png, qk_map.svg to {out}"
    )
    return 0


def cmd_index_contexts(args) -> int:
    from lmtt.cli import _console, _load
    from lmtt.context_index import build_context_index

    model = _load(args)
    meta = build_context_index(
        model, args.corpus, args.out, args.layers, args.max_tokens, not args.quiet
    )
    _console().print(
        f"indexed {meta['n_tokens']:,} tokens of {meta['documents']:,} documents at layers "
        f"{meta['layers']} into {args.out}: {meta['bytes'] / 2**20:.1f} MB on disk (float16)"
    )
    return 0


def cmd_contexts(args) -> int:
    from rich.table import Table

    from lmtt.cli import _console, _load
    from lmtt.context_index import ContextIndex, histograms, search_token
    from lmtt.viz.text import token_label

    console = _console()
    model = _load(args)
    index = ContextIndex(args.index)
    matches = search_token(model, index, args.prompt, args.position, args.layer, args.k)
    table = Table(title=f"Corpus tokens closest to position {args.position} at layer {args.layer}")
    for col in ("#", "cosine", "token", "UPOS", "deprel", "in context"):
        table.add_column(col, overflow="fold")
    for m in matches:
        table.add_row(
            str(m.rank + 1), f"{m.similarity:.3f}", token_label(m.token), m.upos or "",
            m.deprel or "", m.in_context(40),
        )  # fmt: skip
    console.print(table)
    upos, deprel = histograms(matches)
    if upos:
        console.print("UPOS: " + ", ".join(f"{t} {c}" for t, c in upos.items()))
        console.print("deprel: " + ", ".join(f"{t} {c}" for t, c in deprel.items()))
    if args.out:
        _write_matches(matches, upos, deprel, Path(args.out), args.layer)
        console.print(f"wrote matches.csv and the histograms (PNG, SVG) to {args.out}")
    return 0


def _write_matches(matches, upos: dict, deprel: dict, out: Path, layer: int) -> None:
    import csv
    from dataclasses import asdict

    from lmtt.viz.static import figure_png_svg, tag_histograms_static

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "matches.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(matches[0])))
        writer.writeheader()
        writer.writerows(asdict(m) for m in matches)
    if upos:
        title = f"{len(matches)} nearest contexts, layer {layer}"
        png, svg = figure_png_svg(tag_histograms_static(upos, deprel, title))
        (out / "histograms.png").write_bytes(png)
        (out / "histograms.svg").write_bytes(svg)


def add_commands(sub, add_model_args) -> None:
    p = sub.add_parser("mask", help="fill in [MASK] tokens with a masked-LM (BERT-style)")
    add_model_args(p)
    p.add_argument("prompt")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--diagrams", default=None, metavar="DIR", help="write per-head PNGs here")
    p.set_defaults(func=cmd_mask)

    p = sub.add_parser("attention", help="write head view, model view and q.k views as files")
    add_model_args(p)
    p.add_argument("prompt")
    p.add_argument("--layer", type=int, default=0)
    p.add_argument("--head", type=int, default=0)
    p.add_argument("--query", type=int, default=-1, help="query position for q.k (default last)")
    p.add_argument("--out", required=True, help="folder for the files")
    p.set_defaults(func=cmd_attention)

    p = sub.add_parser("qk-map", help="one head's queries and keys over a corpus, in 2-D")
    add_model_args(p)
    p.add_argument("--corpus", required=True, help=".txt, .jsonl or .conllu file or folder")
    p.add_argument("--layer", type=int, required=True)
    p.add_argument("--head", type=int, required=True)
    p.add_argument("--tokens", type=int, default=2000, help="map about this many tokens")
    p.add_argument("--method", default="pca", choices=["pca", "tsne", "umap"])
    p.add_argument("--colour", default="kind", choices=["kind", "position"])
    p.add_argument("--out", required=True, help="folder for qk_map.html, .png and .svg")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_qk_map)

    p = sub.add_parser("index-contexts", help="store a corpus's hidden states for search")
    add_model_args(p)
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--layers", type=int, nargs="+", default=None, help="default: all")
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_index_contexts)

    p = sub.add_parser("contexts", help="corpus tokens whose hidden state is most similar")
    add_model_args(p)
    p.add_argument("--index", required=True)
    p.add_argument("prompt")
    p.add_argument("--position", type=int, required=True, help="token position in the prompt")
    p.add_argument("--layer", type=int, required=True, help="0 = embeddings .. n_layers")
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--out", default=None, help="folder for matches.csv and histogram PNG/SVG")
    p.set_defaults(func=cmd_contexts)
