"""Figures of a head's score decomposition (lmtt.flow.score): the top (query part, key part)
pairs as horizontal bars, plotly for the app and matplotlib (object API) for files."""

from __future__ import annotations

import plotly.graph_objects as go
from matplotlib.figure import Figure

from lmtt.flow.score import ScoreDecomposition
from lmtt.viz.text import part_label, token_label

FOR, AGAINST = "#d9480f", "#1c7ed6"  # terms raising the score, lowering it


def pair_labels(s: ScoreDecomposition, tokens, k: int) -> list[tuple[str, float]]:
    """The top ``k`` pairs in words, largest first: ("L0 H3 at ' Mary' (query) × ...", v)."""

    def words(q: str, b: str) -> str:
        key = part_label(b, tokens, s.key, "key", minus=s.other)
        return f"{part_label(q, tokens, s.query, 'query')} × {key}"

    return [(words(q, b), v) for q, b, v in s.top_pairs(k)]


def _title(s: ScoreDecomposition, tokens) -> str:
    what = f"'{token_label(tokens[s.query])}' → '{token_label(tokens[s.key])}'"
    if s.other is not None:
        what += f" rather than '{token_label(tokens[s.other])}'"
        return f"L{s.layer}H{s.head} {what}: score difference {s.score:.3f}"
    return f"L{s.layer}H{s.head} {what}: score {s.score:.3f}"


def score_pairs_figure(s: ScoreDecomposition, tokens, k: int = 12) -> go.Figure:
    pairs = pair_labels(s, tokens, k)[::-1]  # largest on top
    values = [v for _, v in pairs]
    fig = go.Figure(go.Bar(
        x=values, y=[label for label, _ in pairs], orientation="h",
        marker={"color": [FOR if v > 0 else AGAINST for v in values]},
        hovertemplate="%{y}<br>%{x:.3f}<extra></extra>",
    ))  # fmt: skip
    fig.update_layout(
        title=_title(s, tokens), height=120 + 26 * len(pairs), plot_bgcolor="white",
        margin={"t": 50, "b": 40, "l": 10, "r": 10}, xaxis_title="term of the score",
        yaxis={"automargin": True},
    )  # fmt: skip
    return fig


def score_pairs_static(s: ScoreDecomposition, tokens, k: int = 12) -> Figure:
    pairs = pair_labels(s, tokens, k)[::-1]
    fig = Figure(figsize=(9, 0.8 + 0.32 * len(pairs)))
    ax = fig.subplots()
    values = [v for _, v in pairs]
    ax.barh(range(len(pairs)), values, color=[FOR if v > 0 else AGAINST for v in values])
    ax.set_yticks(range(len(pairs)), [label for label, _ in pairs], fontsize=8)
    ax.axvline(0, color="#888", lw=0.8)
    ax.set_xlabel("term of the score")
    ax.set_title(_title(s, tokens), fontsize=10)
    return fig
