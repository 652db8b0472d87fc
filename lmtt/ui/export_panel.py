"""Downloads: routes JSON, graph SVG (PNG via the chart's camera button), tables as CSV."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lmtt.graph import RouteGraph
from lmtt.viz.graph_svg import route_svg


def edges_table(graph: RouteGraph) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "kind": e.kind,
                "weight": e.weight,
                "source": e.source.id,
                "source_token": graph.tokens[e.source.pos],
                "target": e.target.id,
                "target_token": graph.tokens[e.target.pos],
                "top_head": e.top_head,
            }
            for e in graph.edges
        ]
    )


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
