"""``lmtt index-contexts`` and ``lmtt contexts``: corpus context search (exBERT)."""

from __future__ import annotations

from pathlib import Path

from lmtt.cli import common


def cmd_index_contexts(args) -> int:
    from lmtt.index.context_index import build_context_index

    common.output_folder(args.out)
    model = common.load(args)
    meta = build_context_index(
        model, args.corpus, args.out, args.layers, args.max_tokens, not args.quiet
    )
    common.console().print(
        f"indexed {meta['n_tokens']:,} tokens of {meta['documents']:,} documents at layers "
        f"{meta['layers']} into {args.out}: {meta['bytes'] / 2**20:.1f} MB on disk (float16)"
    )
    return 0


def cmd_contexts(args) -> int:
    from rich.table import Table

    from lmtt.index.context_index import ContextIndex, histograms, search_token
    from lmtt.viz.text import token_label

    text = common.prompt(args)
    out = common.output_folder(args.out)
    index = ContextIndex(args.index)
    console = common.console()
    args.model = args.model or index.meta["model"]  # the model the index was built with
    model = common.load(args)
    matches = search_token(model, index, text, args.position, args.layer, args.k)
    token = token_label(model.token_strings(model.encode(text))[args.position])
    table = Table(title=f"Corpus tokens closest to position {args.position} '{token}' at layer "
                  f"{args.layer} (model {model.name}, read from the index)")  # fmt: skip
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
    if out is not None:
        _write_matches(matches, upos, deprel, out, args.layer)
        console.print(f"wrote matches.csv and the histograms (PNG, SVG) to {args.out}")
    return 0


def _write_matches(matches, upos: dict, deprel: dict, out: Path, layer: int) -> None:
    from dataclasses import asdict

    from lmtt.viz.static import figure_png_svg, tag_histograms_static

    files = {"matches.csv": common.csv_bytes([asdict(m) for m in matches])}
    if upos:
        title = f"{len(matches)} nearest contexts, layer {layer}"
        png, svg = figure_png_svg(tag_histograms_static(upos, deprel, title))
        files |= {"histograms.png": png, "histograms.svg": svg}
    common.write_files(out, files)


def add_commands(sub) -> None:
    p = common.command(
        sub, "index-contexts", "store a corpus's hidden states for search", cmd_index_contexts
    )
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--layers", type=common.count(0), nargs="+", default=None, help="default: all")
    p.add_argument("--max-tokens", type=common.count(1), default=None)
    p.add_argument("--quiet", action="store_true")

    p = common.command(
        sub,
        "contexts",
        "corpus tokens whose hidden state is most similar",
        cmd_contexts,
        prompt=True,
    )
    p.add_argument("--index", required=True)
    p.add_argument("--position", type=int, required=True, help="token position in the prompt")
    p.add_argument(
        "--layer", type=common.count(0), required=True, help="0 = embeddings .. n_layers"
    )
    p.add_argument("--k", type=int, default=50, help="matches to show (at least 1)")
    p.add_argument("--out", default=None, help="folder for matches.csv and histogram PNG/SVG")
