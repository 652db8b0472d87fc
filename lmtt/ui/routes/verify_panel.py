"""Verify the routes: every edge knocked out, coloured by its measured effect; completeness and
the faithfulness curve."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from lmtt.errors import LmttError
from lmtt.flow.graph import RouteGraph
from lmtt.flow.qk_routes import value_edges
from lmtt.ui.cache import get_verification
from lmtt.viz.causal_figures import faithfulness_figure
from lmtt.viz.graph_figure import route_figure

MIN_SHARE = 0.01  # an edge without effect moves the metric by less than this share of its span


def verify_panel(graph: RouteGraph, trace, trace_key, model, graph_key: tuple, foil: str) -> None:
    with st.expander("Verify routes: knock out every edge, completeness, faithfulness curve"):
        st.caption(
            "Each edge is removed in a real forward pass (batched); its effect is the drop of "
            "the metric as a share of its span (clean minus every edge removed). Completeness: "
            "the share kept with only the routes kept; share lost: with only the routes removed."
        )
        if not st.button("verify routes", key="verify_run"):
            return
        graph = replace(graph, edges=value_edges(graph))  # key/query edges are not paths
        try:
            effects, f = get_verification(trace_key, graph_key, foil, graph, model, trace)
        except LmttError as e:
            st.warning(str(e))
            return
        span = f.clean - f.baseline
        shares = {e.id: float(x) / span for e, x in zip(effects.edges, effects.effect, strict=True)}
        idle = sum(abs(v) < MIN_SHARE for v in shares.values())
        a, b, c = st.columns(3)
        a.metric("completeness", f"{f.completeness[0]:.2f}")
        b.metric("share lost without the routes", f"{f.complement[0]:.2f}")
        c.metric("edges without effect", f"{idle} of {len(effects.edges)}")
        title = (f"Measured effect of each edge ({effects.metric.describe(trace.vocab)}): red for "
                 "the prediction, blue against it, grey without effect")  # fmt: skip
        fig = route_figure(graph, trace.n_layers, title, effects=shares, min_share=MIN_SHARE)
        st.plotly_chart(fig, key="verify_graph")
        st.plotly_chart(faithfulness_figure(f.without_first()), key="faithfulness_curve")
