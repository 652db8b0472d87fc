"""The panel of one edge: its weight and, for an attention edge, its own per-head split and
what its own write (the terms A * u from its source, per head) promotes and suppresses."""

from __future__ import annotations

import streamlit as st

from lmtt.flow.decompose import edge_parts
from lmtt.flow.graph import Edge, RouteGraph
from lmtt.flow.lens import promoted_suppressed
from lmtt.viz.charts import head_bar_chart
from lmtt.viz.tables import token_table
from lmtt.viz.text import node_label, token_label

WEIGHT_MEANING = {
    "proximity": "its proximity share of the block it builds",
    "read": "its share of the block, weighted by what the reader reads",
    "knockout": "its measured effect when removed alone, a share of the metric's span",
    "verified": "its measured effect within the routes, a share of the metric's span",
    "attribution": "the gradient estimate of its removal, a share of the metric's span",
}


def edge_caption(edge: Edge, graph: RouteGraph) -> None:
    """The edge's ends and weight, and what the weight means."""
    ends = f"{node_label(edge.source, graph.tokens)} → {node_label(edge.target, graph.tokens)}"
    meaning = WEIGHT_MEANING.get(graph.score, graph.score)
    st.markdown(f"**{edge.kind.capitalize()} edge** {ends}: weight **{edge.weight:.3f}**, "
                f"{meaning}.")  # fmt: skip


def attention_edge_panel(edge: Edge, graph: RouteGraph, trace) -> None:
    layer, query, source = edge.target.layer, edge.target.pos, edge.source.pos
    edge_caption(edge, graph)
    parts = edge_parts(trace, layer, query, source)  # [H, d]: this edge's write, per head
    if edge.heads:
        top = edge.top_head
        st.plotly_chart(head_bar_chart(list(edge.heads), "This edge's weight per head", top),
                        key="edge_heads")  # fmt: skip
    sizes = parts.norm(dim=-1).tolist()
    order = sorted(range(len(sizes)), key=lambda h: -sizes[h])
    choice = st.selectbox(
        "what it writes", ["all heads", *order], key=f"edge_write_{edge.id}",
        format_func=lambda h: h if h == "all heads" else f"H{h} (norm {sizes[h]:.2f})",
    )  # fmt: skip
    write = parts.sum(0) if choice == "all heads" else parts[choice]
    who = "all heads" if choice == "all heads" else f"H{choice}"
    st.caption(f"Tokens promoted and suppressed by what {who} of layer {layer} carries from "
               f"{source} '{token_label(trace.token_strs[source])}' to {query} (the terms "
               "A · u of this source alone, through the unembedding)")  # fmt: skip
    st.dataframe(token_table(promoted_suppressed(trace, write, query, k=8)), hide_index=True,
                 key="edge_tokens")  # fmt: skip
