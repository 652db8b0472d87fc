"""The lmtt app: pick a model and prompt, walk the routes, inspect any component."""

from __future__ import annotations

import streamlit as st

from lmtt.errors import EmptyRoutesError, LmttError
from lmtt.graph import Node
from lmtt.ui.attention_panel import attention_panel
from lmtt.ui.attention_tab import attention_tab
from lmtt.ui.cache import get_model, get_routes, get_trace
from lmtt.ui.context_tab import context_tab
from lmtt.ui.export_panel import export_panel
from lmtt.ui.graph_panel import graph_panel
from lmtt.ui.mask_tab import mask_tab
from lmtt.ui.mlp_panel import mlp_panel
from lmtt.ui.residual_panel import residual_panel
from lmtt.ui.sidebar import sidebar
from lmtt.viz.text import token_label


def _target_picker(trace, prompt: str) -> int:
    """Target position: the last token of a new prompt (a URL's target is kept on first load)."""
    last = trace.n_tokens - 1
    first_load = st.session_state.get("_target_prompt") is None
    if st.session_state.get("_target_prompt") != prompt:
        if not (first_load and "target" in st.session_state):
            st.session_state["target"] = last
        st.session_state["_target_prompt"] = prompt
    if not 0 <= st.session_state.get("target", last) <= last:
        st.session_state["target"] = last
    return st.sidebar.selectbox(
        "target token (whose prediction to explain)",
        list(range(trace.n_tokens)),
        key="target",
        format_func=lambda i: f"{i}: {token_label(trace.token_strs[i])}",
    )


def _inspect(selection: str, trace, trace_key, settings) -> None:
    renorm = settings.threshold if settings.renormalize else None
    target_token = int(trace.logits[st.session_state["target"]].argmax())
    if ">" in selection:  # an edge: source>target>kind
        _, target_id, kind = selection.split(">")
        node = Node.from_id(target_id)
        if kind == "attention":
            attention_panel(trace, trace_key, node.layer, node.pos, renorm)
        elif kind == "mlp":
            mlp_panel(trace, node.layer, node.pos, settings.neuron_index)
        else:
            residual_panel(trace, node, target_token, settings.final_norm)
        return
    node = Node.from_id(selection)
    if node.kind == "mlp":
        mlp_panel(trace, node.layer, node.pos, settings.neuron_index)
    elif node.kind == "attn_out":
        tabs = st.tabs(["attention block", "residual state"])
        with tabs[0]:
            attention_panel(trace, trace_key, node.layer, node.pos, renorm)
        with tabs[1]:
            residual_panel(trace, node, target_token, settings.final_norm)
    else:
        residual_panel(trace, node, target_token, settings.final_norm)


def main() -> None:
    st.set_page_config(page_title="lmtt", page_icon="🔎", layout="wide")
    settings = sidebar()
    st.title("lmtt · why did the model predict this token?")
    if not settings.model:
        st.info("Enter a hub model name or a local model folder in the sidebar.")
        return
    model_key = (settings.model, settings.device, settings.dtype)
    try:
        with st.spinner(f"Loading {settings.model}…"):
            model = get_model(*model_key)
    except LmttError as e:
        st.error(f"Could not load **{settings.model}**: {e}")
        return
    if not settings.prompt:
        st.warning("The prompt is empty: type some text in the sidebar or pick an example.")
        return
    tabs = st.tabs(["Routes", "Attention", "Masked LM", "Context search"])
    with tabs[0]:
        _routes_tab(model, model_key, settings)
    with tabs[1]:
        attention_tab(model, model_key, settings.prompt)
    with tabs[2]:
        mask_tab(model, model_key, settings.prompt)
    with tabs[3]:
        context_tab(model, settings.prompt)


def _routes_tab(model, model_key: tuple, settings) -> None:
    trace_key = (model_key, settings.prompt)
    try:
        trace = get_trace(model_key, settings.prompt, model)
    except LmttError as e:
        st.error(str(e))
        return
    target = _target_picker(trace, settings.prompt)
    st.query_params.update(
        {
            "model": settings.model,
            "prompt": settings.prompt,
            "threshold": f"{settings.threshold:g}",
            "target": str(target),
        }
        | ({"index": settings.neuron_index} if settings.neuron_index else {})
    )
    try:
        graph = get_routes(trace_key, target, settings.threshold, settings.renormalize, trace)
    except EmptyRoutesError as e:
        st.warning(str(e))
        return
    best = trace.probabilities(target).max(dim=-1)
    graph_panel(graph, trace.n_layers, trace.vocab[int(best.indices)], float(best.values))
    selection = st.session_state.get("selection")
    if selection:
        st.query_params["sel"] = selection
        try:
            _inspect(selection, trace, trace_key, settings)
        except (ValueError, IndexError):
            st.warning(f"Cannot inspect {selection!r}: it does not belong to this prompt.")
    else:
        st.query_params.pop("sel", None)
        st.info("Click a node or an edge of the graph (or use the inspect box) to see inside it.")
    export_panel(graph, trace.n_layers)
