"""Downloads: routes JSON, graph SVG (PNG via the chart's camera button), tables as CSV."""

from __future__ import annotations

import streamlit as st

from lmtt.flow.graph import RouteGraph
from lmtt.viz.graph_svg import route_svg
from lmtt.viz.tables import edges_table


def export_panel(graph: RouteGraph, n_layers: int) -> None:
    with st.expander("Export"):
        cols = st.columns(3)
        cols[0].download_button(
            "routes (JSON)", graph.dumps(), "lmtt-routes.json", "application/json", key="dl_json"
        )
        cols[1].download_button(
            "graph (SVG)",
            route_svg(graph, n_layers),
            "lmtt-routes.svg",
            "image/svg+xml",
            key="dl_svg",
        )
        cols[2].download_button(
            "edges (CSV)",
            edges_table(graph).to_csv(index=False),
            "lmtt-edges.csv",
            "text/csv",
            key="dl_csv",
        )
        st.caption(
            "PNG: the camera button on the graph. Every table also downloads as CSV "
            "from its toolbar."
        )
