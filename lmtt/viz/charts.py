"""Plotly figures for the component panels."""

from __future__ import annotations

import plotly.graph_objects as go

from lmtt.viz.text import token_label


def contribution_bars(
    labels: list[str], values: list[float], title: str, colorscale: str, selected: int = -1
) -> go.Figure:
    """Bars of contributions, coloured by value; the ``selected`` bar is outlined."""
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=values,
            marker={
                "color": values,
                "colorscale": colorscale,
                "cmin": 0,
                "line": {
                    "width": [3 if i == selected else 0 for i in range(len(values))],
                    "color": "black",
                },
            },
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


def head_bar_chart(per_head: list[float], title: str, selected: int | None = None) -> go.Figure:
    """Contribution of each head to one attention block, bars coloured by contribution."""
    labels = [f"H{h}" for h in range(len(per_head))]
    return contribution_bars(
        labels, per_head, title, "Oranges", -1 if selected is None else selected
    )


def token_heatmap(
    matrix, tokens: list[str], title: str, colorscale: str = "Blues", first: int = 0,
    highlight: tuple[int, int] | None = None,
) -> go.Figure:  # fmt: skip
    """A query x key map (rows: the position that reads, columns: the position read); the
    tokens' positions start at ``first``; ``highlight`` (query, key), in the map's own rows
    and columns, outlines that row and that column."""
    labels = [f"{first + i} {token_label(t, 10)}" for i, t in enumerate(tokens)]
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
    if highlight is not None:
        row, col = highlight
        n = len(labels)
        box = {"type": "rect", "xref": "x", "yref": "y", "line": {"color": "#d6336c", "width": 2}}
        fig.add_shape(**box, x0=-0.5, x1=n - 0.5, y0=row - 0.5, y1=row + 0.5)  # the query row
        fig.add_shape(**box, x0=col - 0.5, x1=col + 0.5, y0=-0.5, y1=n - 0.5)  # the key column
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
    top = max((r + 1 for _, r in ranks), default=1)
    decades = [10**k for k in range(len(str(top)) + 1)]  # 1, 10, 100, ... past the worst rank
    fig.update_layout(
        title=f"Rank of '{token_label(token)}' by layer (1 = top)",
        height=280,
        yaxis={
            "type": "log",
            "autorange": "reversed",
            "title": "rank",
            "tickmode": "array",
            "tickvals": decades,
            "ticktext": [f"{v:,}" for v in decades],
        },  # fmt: skip
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
        plot_bgcolor="white",
    )
    return fig


def neuron_bar_chart(labels: list[str], values: list[float], title: str) -> go.Figure:
    """Contributions of neurons (labelled ``n12``, or ``E3 n12`` for an expert's unit)."""
    return contribution_bars(labels, values, title, "Greens")


def router_chart(weights: list[float], title: str) -> go.Figure:
    """A mixture of experts' router weight of each expert at one position."""
    labels = [f"E{e}" for e in range(len(weights))]
    return contribution_bars(labels, weights, title, "Purples")


def tag_histogram(counts: dict[str, int], title: str) -> go.Figure:
    """Bar chart of tag counts (e.g. UPOS), most frequent first."""
    tags = sorted(counts, key=lambda t: (-counts[t], t))
    fig = go.Figure(go.Bar(x=tags, y=[counts[t] for t in tags], marker_color="#4C78A8"))
    fig.update_layout(title=title, height=260, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_yaxes(title="examples")
    return fig
