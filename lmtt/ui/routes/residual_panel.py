"""Panel for a residual state: logit lens with rank changes, and the target's rank by layer."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lmtt.flow.lens import lens_with_rank_change, token_rank_by_layer
from lmtt.models.trace import Trace
from lmtt.viz.charts import rank_figure
from lmtt.viz.text import node_label, percent, token_label


def _arrow(change: int | None) -> str:
    if change is None:
        return ""
    return f"▲ {change}" if change > 0 else (f"▼ {-change}" if change < 0 else "=")


def _colour(value: str) -> str:
    return (
        "color: #2f9e44"
        if value.startswith("▲")
        else ("color: #c92a2a" if value.startswith("▼") else "")
    )


def residual_panel(trace: Trace, node, target_token: int, final_norm: bool) -> None:
    st.subheader(f"Residual state: {node_label(node, trace.token_strs)}")
    rows = lens_with_rank_change(trace, node, k=15, apply_norm=final_norm)
    table = pd.DataFrame(
        {
            "rank": [r.rank + 1 for r in rows],
            "token": [token_label(r.score.token) for r in rows],
            "probability": [percent(r.score.prob) for r in rows],
            "rank change": [_arrow(r.rank_change) for r in rows],
        }
    )
    left, right = st.columns([1, 1])
    with left:
        st.caption("Logit lens (rank change: relative to the state before this block)")
        st.dataframe(
            table.style.map(_colour, subset=["rank change"]), hide_index=True, key="lens_table"
        )
    with right:
        ranks = token_rank_by_layer(trace, node.pos, target_token, apply_norm=final_norm)
        st.plotly_chart(rank_figure(ranks, trace.vocab[target_token]), key="rank_chart")
