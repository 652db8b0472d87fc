"""Compare with another prompt: the two prompts' proximity routes on one graph (B minus A),
and the edges only in one of them (lmtt.flow.diff)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lmtt.errors import LmttError
from lmtt.flow.diff import diff_routes
from lmtt.ui.cache import get_routes, get_trace, settings
from lmtt.viz.graph_figure import route_figure
from lmtt.viz.text import node_label


def _edges_frame(edges, tokens) -> pd.DataFrame:
    return pd.DataFrame([{"kind": e.kind, "source": node_label(e.source, tokens),
                          "target": node_label(e.target, tokens), "weight": e.weight}
                         for e in sorted(edges, key=lambda e: -abs(e.weight))])  # fmt: skip


def diff_panel(trace, trace_key, model, target: int, threshold: float) -> None:
    with st.expander("Compare with another prompt (B): the routes of both on one graph"):
        other = st.text_input("prompt B (a counterfactual, say)", key="diff_prompt",
                              max_chars=settings().max_prompt_chars)  # fmt: skip
        if not other.strip():
            st.caption("Type a second prompt: its routes are aligned on the prediction and "
                       "compared edge by edge with this prompt's proximity routes.")  # fmt: skip
            return
        model_key = trace_key[0]
        try:
            settings().check_prompt(other)
            settings().check_tokens(len(model.encode(other)))
            trace_b = get_trace(model_key, other, model)
            a = get_routes(trace_key, target, threshold, False, trace)
            b = get_routes((model_key, other), trace_b.n_tokens - 1, threshold, False, trace_b)
            d = diff_routes(a, b)
        except LmttError as e:
            st.warning(str(e))
            return
        st.caption(f"{len(d.only_a)} edges only in A, {len(d.only_b)} only in B, {len(d.both)} "
                   "in both; edge weights are B's minus A's: violet where A leans on an edge "
                   "more.")  # fmt: skip
        title = "B minus A (A's tokens, 'A|B' where the prompts differ)"
        st.plotly_chart(route_figure(d.graph(), trace.n_layers, title), key="diff_graph")
        tokens = d.graph().tokens
        left, right = st.columns(2)
        left.markdown("**only in A**")
        left.dataframe(_edges_frame(d.only_a, tokens), hide_index=True, key="diff_only_a")
        right.markdown("**only in B**")
        right.dataframe(_edges_frame(d.only_b, tokens), hide_index=True, key="diff_only_b")
