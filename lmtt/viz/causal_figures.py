"""Figures of causal evidence: the faithfulness curve, proximity against knockout effect, and
a patching heatmap; plotly for the app, matplotlib (object API) for files."""

from __future__ import annotations

import plotly.graph_objects as go
from matplotlib.figure import Figure

from lmtt.causal.edges import EdgeEffects
from lmtt.causal.faithfulness import Faithfulness
from lmtt.causal.patching import PatchingEffects
from lmtt.viz.text import token_label

KIND_COLOURS = {"attention": "#e8710a", "mlp": "#1e8e3e", "residual": "#80868b"}


def _curve_title(f: Faithfulness) -> str:
    text = f"completeness (area {f.completeness_area:.2f})"
    if f.complement is not None:
        text += f", share lost without the graph (area {f.complement_area:.2f})"
    return text


def faithfulness_figure(f: Faithfulness) -> go.Figure:
    """Completeness and share lost against the threshold, edges counted on hover."""
    x, edges = list(f.thresholds), [f"{n} edges" for n in f.n_edges]
    fig = go.Figure()
    fig.add_scatter(x=x, y=list(f.completeness), name="completeness (only the graph kept)",
                    text=edges, mode="lines+markers", line={"color": "#1a73e8"})  # fmt: skip
    if f.complement is not None:
        fig.add_scatter(x=x, y=list(f.complement), name="share lost (only the graph removed)",
                        text=edges, mode="lines+markers", line={"color": "#d93025"})  # fmt: skip
    fig.update_traces(hovertemplate="threshold %{x}: %{y:.2f} (%{text})<extra></extra>")
    fig.update_layout(
        title=_curve_title(f), height=320, plot_bgcolor="white",
        xaxis_title="threshold", yaxis_title="share of the metric",
        margin={"t": 50, "b": 40, "l": 50, "r": 10}, legend={"orientation": "h", "y": -0.3},
    )  # fmt: skip
    return fig


def effects_figure(v: EdgeEffects, labels: list[str]) -> go.Figure:
    """Each edge's proximity weight against its measured knockout effect."""
    fig = go.Figure()
    for kind, colour in KIND_COLOURS.items():
        idx = [i for i, e in enumerate(v.edges) if e.kind == kind]
        if idx:
            fig.add_scatter(
                x=[v.edges[i].weight for i in idx], y=[float(v.effect[i]) for i in idx],
                text=[labels[i] for i in idx], mode="markers", name=kind,
                marker={"color": colour}, hovertemplate="%{text}<br>proximity %{x:.3f}, "
                "effect %{y:.3f}<extra></extra>",
            )  # fmt: skip
    fig.update_layout(
        title="proximity weight vs knockout effect", height=320, plot_bgcolor="white",
        xaxis_title="proximity weight", yaxis_title="metric change when removed",
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
    )  # fmt: skip
    return fig


def faithfulness_static(f: Faithfulness) -> Figure:
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    ax.plot(f.thresholds, f.completeness, "o-", color="#1a73e8", label="completeness")
    if f.complement is not None:
        ax.plot(f.thresholds, f.complement, "o-", color="#d93025", label="share lost")
    for x, y, n in zip(f.thresholds, f.completeness, f.n_edges, strict=True):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(0, 5), fontsize=7)
    ax.set_xlabel("threshold (numbers: edges kept)")
    ax.set_ylabel("share of the metric")
    ax.set_title(_curve_title(f), fontsize=9)
    ax.legend(fontsize=8)
    return fig


def effects_static(v: EdgeEffects) -> Figure:
    fig = Figure(figsize=(5, 3.6))
    ax = fig.subplots()
    for kind, colour in KIND_COLOURS.items():
        idx = [i for i, e in enumerate(v.edges) if e.kind == kind]
        if idx:
            ax.scatter([v.edges[i].weight for i in idx], [float(v.effect[i]) for i in idx],
                       color=colour, label=kind, s=14)  # fmt: skip
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel("proximity weight")
    ax.set_ylabel("metric change when removed")
    ax.legend(fontsize=8)
    return fig


def patching_static(p: PatchingEffects, tokens: list[str]) -> Figure:
    share = p.share.numpy()
    fig = Figure(figsize=(max(4.0, 0.4 * share.shape[1] + 2), 0.45 * share.shape[0] + 1.5))
    ax = fig.subplots()
    image = ax.imshow(share, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    if p.what == "heads":
        ax.set_xlabel("head")
    else:
        labels = [token_label(t, 10) for t in tokens]
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_ylabel("layer")
    ax.set_title(f"patching {p.what}: share of the counterfactual's change", fontsize=9)
    fig.colorbar(image, ax=ax)
    return fig
