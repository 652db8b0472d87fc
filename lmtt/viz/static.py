"""Static PNG/SVG renderings of the attention views (matplotlib, no browser needed).

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``), never pyplot:
writing a PNG or SVG picks its own canvas, so nothing here selects a backend or touches
pyplot's global state, and a notebook keeps whatever backend it uses.
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure

from lmtt.attention.qk import QKBreakdown
from lmtt.attention.qk_map import QueryKeyMap
from lmtt.attention.views import view_layers
from lmtt.models.trace import Trace
from lmtt.viz.head_view import head_colour
from lmtt.viz.text import token_label


def figure_bytes(fig: Figure, fmt: str = "png") -> bytes:
    if fmt not in ("png", "svg"):
        raise ValueError(f"format must be png or svg, not {fmt!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110, bbox_inches="tight")
    return buf.getvalue()


def figure_png_svg(fig: Figure) -> tuple[bytes, bytes]:
    """Both export formats from one rendering of the figure (closed afterwards)."""
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110, bbox_inches="tight")
    return png.getvalue(), figure_bytes(fig, "svg")


def attention_diagram(pattern, tokens: list[str], title: str) -> Figure:
    """One head's attention: tokens on both axes (query rows, key columns), brighter = more."""
    labels = [token_label(t, 12) for t in tokens]
    size = max(3.0, 0.28 * len(labels) + 1.2)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    image = ax.imshow(pattern.numpy(), cmap="inferno", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    ax.set_title(title, fontsize=10)
    return fig


def model_view_static(trace: Trace) -> Figure:
    layers, H = view_layers(trace), trace.n_heads
    fig = Figure(figsize=(1.1 * H, 1.1 * len(layers)))
    axes = fig.subplots(len(layers), H, squeeze=False)
    for row, layer in enumerate(layers):
        for h in range(H):
            ax = axes[row][h]
            ax.imshow(trace.pattern(layer)[h].numpy(), cmap="inferno", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"H{h}", fontsize=7)
            if h == 0:
                ax.set_ylabel(f"L{layer}", fontsize=7)
    return fig


def head_view_static(
    trace: Trace, layer: int, heads: list[int] | None = None, token: int | None = None
) -> Figure:
    """The head view as a figure: ``heads`` (default all), only query ``token``'s lines if
    given (as ``head_view_svg``)."""
    trace.check(layer, position=token)
    heads = list(range(trace.n_heads)) if heads is None else heads
    T = trace.n_tokens
    fig = Figure(figsize=(5, 0.3 * T + 1))
    ax = fig.subplots()
    for h in heads:
        trace.check(layer, h)
        p = trace.pattern(layer)[h]
        for q, k in (p > 0.01).nonzero().tolist():
            if token is not None and q != token:
                continue
            w = float(p[q, k])
            ax.plot([0, 1], [q, k], color=head_colour(h), alpha=w, linewidth=0.5 + 2.5 * w)
    for i, s in enumerate(trace.token_strs):
        ax.text(-0.03, i, token_label(s, 14), ha="right", va="center", fontsize=8)
        ax.text(1.03, i, token_label(s, 14), ha="left", va="center", fontsize=8)
    ax.set_ylim(T - 0.5, -0.5)
    ax.set_xlim(-0.6, 1.6)
    ax.axis("off")
    ax.set_title(f"Layer {layer}, heads {', '.join(map(str, heads))}", fontsize=9)
    return fig


def qk_breakdown_static(b: QKBreakdown) -> Figure:
    """The q.k breakdown laid out like the interactive one: the query row above the keys,
    then query x key, the scores and the softmax."""
    labels = [f"{i}:{token_label(t, 10)}" for i, t in enumerate(b.tokens)]
    T = len(labels)
    fig = Figure(figsize=(13, 0.28 * T + 2.4))
    axes = fig.subplots(
        2, 4, squeeze=False,
        gridspec_kw={"width_ratios": [5, 5, 2.2, 2.2], "height_ratios": [1.6, T]},
    )  # fmt: skip
    lim = float(max(b.keys.abs().max(), b.products.abs().max(), b.query.abs().max(), 1e-6))
    shade = dict(cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    axes[0][0].imshow(b.query.view(1, -1).numpy(), **shade)
    axes[0][0].set_yticks([0], [labels[b.query_pos]], fontsize=7)
    axes[0][0].set_xticks([])
    axes[0][0].set_title("query", fontsize=9)
    for ax in axes[0][1:]:
        ax.axis("off")
    for ax, mat, title in ((axes[1][0], b.keys, "keys"), (axes[1][1], b.products, "query x key")):
        ax.imshow(mat.numpy(), **shade)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("d_head", fontsize=8)
    scores = b.scores.masked_fill(~b.scores.isfinite(), float("nan")).numpy()
    axes[1][2].barh(range(T), scores, color="#888")
    axes[1][2].set_title("score", fontsize=9)
    axes[1][3].barh(range(T), b.weights.numpy(), color="#1f77b4")
    axes[1][3].set_xlim(0, 1)
    axes[1][3].set_title("softmax", fontsize=9)
    for col, ax in enumerate(axes[1]):
        ax.set_ylim(T - 0.5, -0.5)
        ax.set_yticks(range(T), labels if col == 0 else [""] * T, fontsize=7)
    query = token_label(b.tokens[b.query_pos])
    fig.suptitle(f"L{b.layer} H{b.head}, query {b.query_pos} '{query}'")
    return fig


def qk_map_static(m: QueryKeyMap) -> Figure:
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    pts = m.points.numpy()
    for kind, colour, marker in (("query", "#d62728", "o"), ("key", "#2ca02c", "D")):
        idx = [i for i, k in enumerate(m.kind) if k == kind]
        ax.scatter(pts[idx, 0], pts[idx, 1], s=8, c=colour, marker=marker, label=kind)
    ax.legend()
    ax.set_title(f"Queries and keys of L{m.layer} H{m.head} ({m.method.upper()})")
    return fig


def tag_histograms_static(upos: dict[str, int], deprel: dict[str, int], title: str) -> Figure:
    """UPOS and dependency-relation counts of context-search matches, side by side."""
    fig = Figure(figsize=(10, 3.2))
    axes = fig.subplots(1, 2)
    for ax, counts, name in ((axes[0], upos, "UPOS"), (axes[1], deprel, "dependency relation")):
        tags = sorted(counts, key=lambda t: (-counts[t], t))
        ax.bar(range(len(tags)), [counts[t] for t in tags], color="#4C78A8")
        ax.set_xticks(range(len(tags)), tags, rotation=60, fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("matches")
    fig.suptitle(title, fontsize=10)
    return fig
