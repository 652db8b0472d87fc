"""Plotly figures for the attention views (interactive: app and notebooks)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lmtt.attention import QKBreakdown, QueryKeyMap
from lmtt.attention_trace import AttentionTrace
from lmtt.viz.text import token_label


def attention_heatmap(at: AttentionTrace, layer: int, head: int) -> go.Figure:
    """One head's pattern large: queries down, keys across."""
    at.check(layer, head)
    labels = [f"{i}:{token_label(t, 12)}" for i, t in enumerate(at.token_strs)]
    fig = go.Figure(
        go.Heatmap(
            z=at.patterns[layer, head].numpy(),
            x=labels,
            y=labels,
            colorscale="Viridis",
            zmin=0,
            zmax=1,
            hovertemplate="query %{y}<br>key %{x}<br>attention %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(title=f"L{layer} H{head} attention", height=520, yaxis_autorange="reversed")
    return fig


def model_view_figure(at: AttentionTrace) -> go.Figure:
    """Every layer x head as a small heatmap (rows: layers, columns: heads)."""
    L, H = at.n_layers, at.n_heads
    fig = make_subplots(
        L, H, horizontal_spacing=0.004, vertical_spacing=0.01,
        column_titles=[f"H{h}" for h in range(H)], row_titles=[f"L{lay}" for lay in range(L)],
    )  # fmt: skip
    for layer in range(L):
        for h in range(H):
            fig.add_trace(
                go.Heatmap(
                    z=at.patterns[layer, h].numpy(),
                    colorscale="Viridis",
                    zmin=0,
                    zmax=1,
                    showscale=False,
                    name=f"L{layer} H{h}",
                    hovertemplate=f"L{layer} H{h}<br>q %{{y}} k %{{x}}: %{{z:.2f}}<extra></extra>",
                ),
                layer + 1,
                h + 1,
            )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    fig.update_layout(height=max(300, 70 * L), margin=dict(l=30, r=30, t=30, b=10))
    return fig


def qk_breakdown_figure(b: QKBreakdown) -> go.Figure:
    """Query, keys and their elementwise products as heatmaps, then scores and softmax."""
    labels = [f"{i}:{token_label(t, 10)}" for i, t in enumerate(b.tokens)]
    fig = make_subplots(
        1, 4, column_widths=[0.08, 0.38, 0.38, 0.16], horizontal_spacing=0.03,
        subplot_titles=["query", "keys", "query x key", "score / softmax"],
    )  # fmt: skip
    dims = list(range(len(b.query)))
    fig.add_trace(go.Heatmap(z=b.query.view(-1, 1).numpy(), colorscale="RdBu", zmid=0,
                             showscale=False, y=dims), 1, 1)  # fmt: skip
    for col, mat in ((2, b.keys), (3, b.products)):
        fig.add_trace(
            go.Heatmap(z=mat.numpy(), y=labels, colorscale="RdBu", zmid=0, showscale=False),
            1,
            col,
        )
    scores = b.scores.masked_fill(~b.scores.isfinite(), float("nan"))
    fig.add_trace(go.Bar(x=scores.numpy(), y=labels, orientation="h", name="score",
                         marker_color="#aaa"), 1, 4)  # fmt: skip
    fig.add_trace(go.Bar(x=b.weights.numpy(), y=labels, orientation="h", name="softmax",
                         marker_color="#1f77b4"), 1, 4)  # fmt: skip
    for col in (2, 3, 4):
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    fig.update_layout(
        title=f"L{b.layer} H{b.head}, query {b.query_pos} '{token_label(b.tokens[b.query_pos])}'",
        height=max(320, 22 * len(labels) + 120),
        barmode="overlay",
    )
    return fig


def qk_map_figure(m: QueryKeyMap, colour: str = "kind") -> go.Figure:
    """Scatter of queries and keys; colour by 'kind' (query/key) or 'position'."""
    fig = go.Figure()
    hover = [
        f"{k} {p} '{token_label(t)}'<br>{m.sentences[s][:80]}"
        for k, p, t, s in zip(m.kind, m.position, m.token, m.sentence, strict=True)
    ]
    pts = m.points.numpy()
    for kind, symbol in (("query", "circle"), ("key", "diamond")):
        idx = [i for i, k in enumerate(m.kind) if k == kind]
        marker = dict(symbol=symbol, size=6)
        if colour == "position":
            marker |= dict(color=[m.position[i] for i in idx], colorscale="Viridis",
                           showscale=kind == "query", colorbar=dict(title="position"))  # fmt: skip
        else:
            marker |= dict(color="#d62728" if kind == "query" else "#2ca02c")
        fig.add_trace(
            go.Scattergl(
                x=pts[idx, 0], y=pts[idx, 1], mode="markers", name=kind, marker=marker,
                text=[hover[i] for i in idx], hovertemplate="%{text}<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(
        title=f"Queries and keys of L{m.layer} H{m.head} ({m.method.upper()})", height=560
    )
    return fig
