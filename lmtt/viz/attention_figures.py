"""Plotly figures for the attention views (interactive: app and notebooks)."""

from __future__ import annotations

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from lmtt.attention.qk import QKBreakdown
from lmtt.attention.qk_map import QueryKeyMap
from lmtt.attention.views import view_layers
from lmtt.models.trace import Trace
from lmtt.viz.text import token_label

PICK_GRID = 12  # clickable markers per side of each small heatmap in the model view


def attention_heatmap(trace: Trace, layer: int, head: int) -> go.Figure:
    """One head's pattern large: queries down, keys across."""
    trace.check(layer, head)
    labels = [f"{i}:{token_label(t, 12)}" for i, t in enumerate(trace.token_strs)]
    fig = go.Figure(
        go.Heatmap(
            z=trace.pattern(layer)[head].numpy(),
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


def model_view_figure(trace: Trace, picked: tuple[int, int] | None = None) -> go.Figure:
    """Every layer x head as a small heatmap (rows: layers, columns: heads).

    Plotly cannot select heatmap cells, so each small heatmap is covered by a grid of invisible
    markers (at most ``PICK_GRID`` x ``PICK_GRID``): clicking anywhere on a heatmap selects one
    of its markers. :func:`picked_head` turns that selection back into (layer, head). The
    ``picked`` head is outlined.
    """
    layers, H, T = view_layers(trace), trace.n_heads, trace.n_tokens
    fig = make_subplots(
        len(layers), H, horizontal_spacing=0.004, vertical_spacing=0.01,
        column_titles=[f"H{h}" for h in range(H)], row_titles=[f"L{lay}" for lay in layers],
    )  # fmt: skip
    for row, layer in enumerate(layers):
        for h in range(H):
            fig.add_trace(
                go.Heatmap(
                    z=trace.pattern(layer)[h].numpy(), colorscale="Viridis", zmin=0, zmax=1,
                    showscale=False, name=f"L{layer} H{h}", hoverinfo="skip",
                ),
                row + 1, h + 1,
            )  # fmt: skip
    for row, layer in enumerate(layers):
        for h in range(H):
            fig.add_trace(_pick_markers(trace, layer, h), row + 1, h + 1)
    if picked is not None:
        layer, h = picked
        trace.check(layer, h)
        fig.add_shape(
            type="rect", x0=-0.5, x1=T - 0.5, y0=-0.5, y1=T - 0.5, line=dict(color="#ff4b4b",
            width=3), row=layers.index(layer) + 1, col=h + 1,
        )  # fmt: skip
    bare = dict(showticklabels=False, ticks="", showgrid=False, zeroline=False)
    fig.update_xaxes(range=[-0.5, T - 0.5], **bare)
    fig.update_yaxes(range=[T - 0.5, -0.5], **bare)
    fig.update_layout(
        height=max(300, 70 * len(layers)), margin=dict(l=30, r=30, t=50, b=10),
        clickmode="event+select", dragmode=False,
    )  # fmt: skip
    return fig


def _pick_markers(trace: Trace, layer: int, h: int) -> go.Scatter:
    """The invisible, clickable markers over one small heatmap of the model view."""
    T = trace.n_tokens
    grid = torch.linspace(0, T - 1, min(T, PICK_GRID)).round().long().unique()
    qs, ks = torch.meshgrid(grid, grid, indexing="ij")  # [n, n] query and key positions
    qs, ks = qs.flatten(), ks.flatten()
    if len(grid) == T:  # every cell has its marker: hover can show its value
        att = trace.pattern(layer)[h][qs, ks].tolist()
        strs = trace.token_strs
        text = [
            f"L{layer} H{h} · query {q} '{token_label(strs[q], 12)}' → key {k} "
            f"'{token_label(strs[k], 12)}': {a:.2f}<br>click to open it large"
            for q, k, a in zip(qs.tolist(), ks.tolist(), att, strict=True)
        ]
    else:
        text = [f"L{layer} H{h}<br>click to open it large"] * len(qs)
    return go.Scatter(
        x=ks.numpy(), y=qs.numpy(), mode="markers", showlegend=False,
        marker=dict(size=14, opacity=0), selected=dict(marker=dict(opacity=0)),
        unselected=dict(marker=dict(opacity=0)), customdata=[[layer, h]] * len(qs),
        name=f"pick L{layer} H{h}", text=text, hovertemplate="%{text}<extra></extra>",
    )  # fmt: skip


def picked_head(points: list[dict]) -> tuple[int, int] | None:
    """(layer, head) of the first selected point of :func:`model_view_figure` (None if none)."""
    for point in points:
        data = point.get("customdata")
        if data is not None and len(data) == 2:
            return int(data[0]), int(data[1])
    return None


def qk_breakdown_figure(b: QKBreakdown) -> go.Figure:
    """BertViz's neuron view: the query (one row, d_head wide) above the keys (one row per
    token), their elementwise products, the scores q.k / sqrt(d_head) and the softmax."""
    labels = [f"{i}:{token_label(t, 10)}" for i, t in enumerate(b.tokens)]
    T = len(labels)
    top = 48 / (22 * T + 48)  # the query row: about two key rows high
    fig = make_subplots(
        2, 4, column_widths=[0.34, 0.34, 0.16, 0.16], row_heights=[top, 1 - top],
        horizontal_spacing=0.02, vertical_spacing=0.02, shared_yaxes=True,
        subplot_titles=["query", "", "", "", "keys", "query × key", "score", "softmax"],
    )  # fmt: skip
    lim = float(max(b.keys.abs().max(), b.products.abs().max(), b.query.abs().max(), 1e-6))
    rdbu = dict(colorscale="RdBu", zmid=0, zmin=-lim, zmax=lim, showscale=False)
    pos = b.query_pos
    fig.add_trace(go.Heatmap(z=b.query.view(1, -1).numpy(), y=[labels[pos]], name="query",
                             hovertemplate="query dim %{x}: %{z:.3f}<extra></extra>", **rdbu),
                  1, 1)  # fmt: skip
    for col, mat, what in ((1, b.keys, "key"), (2, b.products, "query × key")):
        fig.add_trace(
            go.Heatmap(z=mat.numpy(), y=labels, name=what, **rdbu,
                       hovertemplate=f"%{{y}} dim %{{x}}: {what} %{{z:.3f}}<extra></extra>"),
            2, col,
        )  # fmt: skip
    scores = b.scores.masked_fill(~b.scores.isfinite(), float("nan"))
    fig.add_trace(go.Bar(x=scores.numpy(), y=labels, orientation="h", name="score",
                         marker_color="#888", showlegend=False,
                         hovertemplate="%{y}: q·k/√d = %{x:.3f}<extra></extra>"), 2, 3)  # fmt: skip
    fig.add_trace(go.Bar(x=b.weights.numpy(), y=labels, orientation="h", name="softmax",
                         marker_color="#1f77b4", showlegend=False,
                         hovertemplate="%{y}: attention %{x:.3f}<extra></extra>"),
                  2, 4)  # fmt: skip
    fig.update_yaxes(autorange="reversed", row=2)
    fig.update_xaxes(showticklabels=False, row=1)
    fig.update_xaxes(title_text="d_head", row=2, col=1)
    fig.update_xaxes(title_text="d_head", row=2, col=2)
    fig.update_xaxes(range=[0, 1], row=2, col=4)
    fig.update_layout(
        title=f"L{b.layer} H{b.head}, query {pos} '{token_label(b.tokens[pos])}'",
        height=22 * T + 200, margin=dict(l=10, r=10, t=70, b=40),
    )  # fmt: skip
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
