"""Plotly figures for the component panels."""

from __future__ import annotations

import plotly.graph_objects as go

from lmtt.viz.text import token_label


def head_bar_chart(per_head: list[float], title: str, selected: int | None = None) -> go.Figure:
    """Contribution of each head to one attention block, bars coloured by contribution."""
    heads = list(range(len(per_head)))
    fig = go.Figure(
        go.Bar(
            x=[f"H{h}" for h in heads],
            y=per_head,
            customdata=heads,
            marker={
                "color": per_head,
                "colorscale": "Oranges",
                "cmin": 0,
                "line": {"width": [3 if h == selected else 0 for h in heads], "color": "black"},
            },
            hovertemplate="head %{customdata}: %{y:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        height=300,
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
        yaxis_title="contribution",
        plot_bgcolor="white",
    )
    return fig


def token_heatmap(matrix, tokens: list[str], title: str, colorscale: str = "Blues") -> go.Figure:
    """A query x key map (rows: the position that reads, columns: the position read)."""
    labels = [f"{i} {token_label(t, 10)}" for i, t in enumerate(tokens)]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=labels,
            y=labels,
            colorscale=colorscale,
            zmin=0,
            hovertemplate="query %{y}<br>key %{x}<br>%{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        height=420,
        margin={"t": 50, "b": 80, "l": 90, "r": 10},
        yaxis={"autorange": "reversed"},
        xaxis={"tickangle": -50},
    )
    return fig


def rank_figure(ranks: list[tuple[str, int]], token: str) -> go.Figure:
    """How the target token's rank evolves through the residual states at one position."""
    fig = go.Figure(
        go.Scatter(
            x=[label for label, _ in ranks],
            y=[r + 1 for _, r in ranks],
            mode="lines+markers",
            hovertemplate="%{x}: rank %{y}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Rank of '{token_label(token)}' by layer (1 = top)",
        height=280,
        yaxis={"type": "log", "autorange": "reversed", "title": "rank"},
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
        plot_bgcolor="white",
    )
    return fig


def neuron_bar_chart(neurons: list[int], values: list[float], title: str) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=[f"n{n}" for n in neurons],
            y=values,
            marker={"color": values, "colorscale": "Greens", "cmin": 0},
            hovertemplate="%{x}: %{y:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        height=300,
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
        yaxis_title="contribution",
        plot_bgcolor="white",
    )
    return fig
