"""Figures of the head catalogue (``lmtt.attention.heads``): every head as a point by two
metrics, coloured by layer; interactive (plotly, the app) and static (matplotlib, the CLI)."""

from __future__ import annotations

import plotly.graph_objects as go
from matplotlib.figure import Figure

from lmtt.attention.heads import HeadCatalogue

LABELS = {
    "previous_token": "previous-token attention",
    "induction": "induction attention (repeated random tokens)",
    "duplicate_token": "duplicate-token attention (repeated random tokens)",
    "first_token": "first-token (sink) attention",
    "entropy": "attention entropy (bits)",
    "route_share": "share of a batch's prompts whose routes carry it",
    "mean_contribution": "mean contribution at the target (a batch)",
}


def head_scatter(catalogue: HeadCatalogue, x: str, y: str, selected: str | None = None):
    """A plotly scatter of every head by metrics ``x`` and ``y``; customdata holds each head's
    name ("L1H3") so a click selects it."""
    rows = catalogue.rows()
    fig = go.Figure(
        go.Scatter(
            x=[r[x] for r in rows],
            y=[r[y] for r in rows],
            mode="markers",
            customdata=[r["name"] for r in rows],
            marker={
                "size": [16 if r["name"] == selected else 10 for r in rows],
                "color": [r["layer"] for r in rows],
                "colorscale": "Viridis",
                "colorbar": {"title": "layer"},
                "line": {
                    "width": [2 if r["name"] == selected else 0.5 for r in rows],
                    "color": "black",
                },
            },  # fmt: skip
            hovertemplate=[
                f"{r['name']}<br>{x} {r[x]:.3f}<br>{y} {r[y]:.3f}<extra></extra>" for r in rows
            ],  # fmt: skip
        )
    )
    fig.update_layout(
        xaxis_title=LABELS[x], yaxis_title=LABELS[y], height=480, clickmode="event+select",
        margin={"l": 60, "r": 20, "t": 40, "b": 60}, title=f"Heads of {catalogue.model}",
    )  # fmt: skip
    return fig


def head_scatter_static(catalogue: HeadCatalogue, x: str, y: str, label_top: int = 5) -> Figure:
    """The same scatter for files, the ``label_top`` heads highest on ``y`` named."""
    rows = catalogue.rows()
    fig = Figure(figsize=(6.5, 5))
    ax = fig.subplots()
    points = ax.scatter([r[x] for r in rows], [r[y] for r in rows],
                        c=[r["layer"] for r in rows], cmap="viridis", s=22)  # fmt: skip
    fig.colorbar(points, ax=ax, label="layer", ticks=range(catalogue.shape[0]))
    for layer, head, _ in catalogue.top(y, label_top):
        r = rows[layer * catalogue.shape[1] + head]
        ax.annotate(r["name"], (r[x], r[y]), fontsize=8, xytext=(3, 3),
                    textcoords="offset points")  # fmt: skip
    ax.set_xlabel(LABELS[x])
    ax.set_ylabel(LABELS[y])
    ax.set_title(f"Heads of {catalogue.model}")
    return fig
