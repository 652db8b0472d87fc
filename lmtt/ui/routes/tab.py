"""The Routes tab: the route graph to a prediction, and a panel for the clicked element."""

from __future__ import annotations

import streamlit as st

from lmtt.causal.metric import make_metric
from lmtt.errors import EmptyRoutesError, InterventionError, LmttError
from lmtt.flow.graph import Edge, RouteGraph, kernel_device
from lmtt.ui import state
from lmtt.ui.cache import get_qk_routes, get_routes, get_scored_routes, get_trace
from lmtt.ui.routes.attention_block_panel import attention_block_panel
from lmtt.ui.routes.diff_panel import diff_panel
from lmtt.ui.routes.edge_panel import attention_edge_panel, edge_caption
from lmtt.ui.routes.export_panel import export_panel
from lmtt.ui.routes.graph_panel import graph_panel
from lmtt.ui.routes.knockout_panel import knockout_panel
from lmtt.ui.routes.mlp_panel import mlp_panel
from lmtt.ui.routes.residual_panel import residual_panel
from lmtt.ui.routes.score_panel import score_panel
from lmtt.ui.routes.verify_panel import verify_panel
from lmtt.viz.text import token_label


def _target_picker(trace, prompt: str, slot=None) -> int:
    """The target position, picked under the prompt (``slot``; else the sidebar's foot) or
    by a click on a column's triangle under the graph's token axis."""
    state.default_target(prompt, trace.n_tokens, trace.default_target())
    return (slot if slot is not None else st.sidebar).selectbox(
        "target token (whose prediction to explain)",
        list(range(trace.n_tokens)),
        key="target",
        format_func=lambda i: f"{i}: {token_label(trace.token_strs[i])}",
        help="or click the triangle under a token of the graph",
    )


def _graph(model, trace, trace_key, settings, target: int) -> RouteGraph:
    """The routes by the sidebar's edge score; a model without a head to predict with (so no
    metric) gets the proximity routes, with a note."""
    if settings.score != "proximity":
        if trace.weights.has_lens:
            # a foil that is not one token is the visitor's to fix: raised to the caller
            make_metric(model, trace, foil=settings.metric_foil or None, position=target)
            try:
                return get_scored_routes(trace_key, target, settings.threshold, settings.score,
                                         settings.metric_foil, model, trace)  # fmt: skip
            except InterventionError as e:  # a family without removable edges, a huge sweep
                st.warning(f"{e} Showing the proximity routes instead.")
        else:
            st.caption(f"This model has no head to predict with, so no {settings.score} score: "
                       "showing proximity routes.")  # fmt: skip
    return get_routes(trace_key, target, settings.threshold, settings.renormalize, trace,
                      kernel_device(model.device))  # fmt: skip


def _with_qk_edges(graph: RouteGraph, trace_key, settings, target: int, model) -> RouteGraph:
    key = (target, settings.threshold, settings.score, settings.renormalize, settings.foil)
    try:
        return get_qk_routes(trace_key[0], trace_key[1], key, graph, model)
    except LmttError as e:  # e.g. a family whose scores cannot be split yet
        st.caption(f"No key and query edges: {e}")
        return graph


def _inspect(graph: RouteGraph, selection: str, trace, trace_key, settings, target: int,
             model) -> None:  # fmt: skip
    """The panel of the selected node or edge (an edge shows the block it points into)."""
    element = graph.find(selection)
    if element is None:
        return
    renorm = settings.threshold if settings.renormalize else None
    target_token = int(trace.logits[target].argmax())
    node = element.target if isinstance(element, Edge) else element
    kind = element.kind if isinstance(element, Edge) else node.kind
    if kind == "attention":
        tabs = st.tabs(["this edge", "attention block", "why this head attends"])
        with tabs[0]:
            attention_edge_panel(element, graph, trace)
        with tabs[1]:
            attention_block_panel(trace, trace_key, node.layer, node.pos, renorm,
                                  source=element.source.pos)  # fmt: skip
        with tabs[2]:
            score_panel(element, trace, trace_key[0], trace_key[1], model)
    elif kind == "attn_out":
        tabs = st.tabs(["attention block", "residual state"])
        with tabs[0]:
            attention_block_panel(trace, trace_key, node.layer, node.pos, renorm)
        with tabs[1]:
            residual_panel(trace, node, target_token, settings.final_norm)
    elif kind == "mlp":
        if isinstance(element, Edge):
            edge_caption(element, graph)
        mlp_panel(trace, node.layer, node.pos, settings.neuron_index)
    else:  # a residual node or edge: an edge shows its source, the part it carries
        if isinstance(element, Edge):
            edge_caption(element, graph)
            node = element.source if element.kind in ("residual", "key", "query") else node
        residual_panel(trace, node, target_token, settings.final_norm)


# The graph's column stays in view while the panel beside it scrolls (wide screens)
STICKY_GRAPH = """<style>
div[data-testid="stHorizontalBlock"]:has(div.lmtt-graph) > div:first-child {
  position: sticky; top: 3.5rem; align-self: flex-start; }
</style>"""


def _selected(graph: RouteGraph, trace, trace_key, settings, target: int, model) -> None:
    """The panel of the selected element (beside the graph), or how to pick one."""
    selection = state.share_selection()
    if not selection:
        st.info("Click a node or an edge of the graph (or use the inspect box) to see inside it.")
        return
    try:
        _inspect(graph, selection, trace, trace_key, settings, target, model)
        if trace.weights.has_lens and graph.find(selection) is not None:
            knockout_panel(graph.find(selection), trace, trace_key, model, target,
                           settings.metric_foil)  # fmt: skip
    except LmttError as e:  # e.g. the lens of an encoder without a masked-LM head
        st.warning(str(e))
    except (ValueError, IndexError):
        st.warning(f"Cannot inspect {selection!r}: it does not belong to this prompt.")


def routes_tab(model, model_key: tuple, settings) -> None:
    trace_key = (model_key, settings.prompt)
    try:
        trace = get_trace(model_key, settings.prompt, model)
    except LmttError as e:
        st.error(str(e))
        return
    target = _target_picker(trace, settings.prompt, settings.target_slot)
    state.share_routes(settings, target)
    try:
        graph = _graph(model, trace, trace_key, settings, target)
        if settings.qk_edges:
            graph = _with_qk_edges(graph, trace_key, settings, target, model)
    except EmptyRoutesError as e:
        st.warning(str(e))
        return
    except LmttError as e:  # e.g. a foil that is not one token
        st.error(str(e))
        return
    best = trace.probabilities(target).max(dim=-1)
    predicted = trace.vocab[int(best.indices)] if trace.weights.has_lens else None
    st.markdown(STICKY_GRAPH, unsafe_allow_html=True)
    graph_side, panel_side = st.columns([3, 2], gap="medium")  # stacked on a narrow screen
    with graph_side:
        st.markdown('<div class="lmtt-graph"></div>', unsafe_allow_html=True)
        graph_panel(
            graph,
            trace.n_layers,
            predicted,
            float(best.values),
            settings.metric_foil,
            settings.collapse or None,
        )  # fmt: skip (off: long prompts still collapse)
    with panel_side:
        _selected(graph, trace, trace_key, settings, target, model)
    if trace.weights.has_lens:
        key = (target, settings.threshold, graph.score, settings.renormalize)
        verify_panel(graph, trace, trace_key, model, key, settings.metric_foil)
    diff_panel(trace, trace_key, model, target, settings.threshold)
    export_panel(graph, trace.n_layers)
