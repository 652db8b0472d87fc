"""Attention tab: head view, model view, q.k breakdown and query-key map (each exportable)."""

from __future__ import annotations

import streamlit as st

from lmtt.attention.qk import qk_breakdown
from lmtt.errors import LmttError
from lmtt.models.trace import Trace
from lmtt.ui import state
from lmtt.ui.attention.qk_map_panel import qk_map_panel
from lmtt.ui.cache import get_attention_trace
from lmtt.ui.downloads import downloads, html_frame
from lmtt.viz import static
from lmtt.viz.attention_figures import (
    attention_heatmap,
    model_view_figure,
    picked_head,
    qk_breakdown_figure,
)
from lmtt.viz.head_view import head_view_html, head_view_svg
from lmtt.viz.text import token_label

VIEWS = ("head view", "model view", "q·k breakdown", "query-key map")


def attention_tab(model, model_key: tuple, prompt: str) -> None:
    try:
        trace = get_attention_trace(model_key, prompt, model)
    except LmttError as e:
        st.error(str(e))
        return
    c1, c2, c3 = st.columns(3)
    layer = c1.selectbox("layer", range(trace.n_layers), key="attn_layer")
    head = c2.selectbox("head", range(trace.n_heads), key="attn_head")
    query = c3.selectbox(
        "query token",
        range(trace.n_tokens),
        index=trace.n_tokens - 1,
        format_func=lambda i: f"{i}: {token_label(trace.token_strs[i])}",
        key="attn_query",
    )
    view = st.radio("view", VIEWS, horizontal=True, key="attn_view")
    try:
        _view(view, model, model_key, prompt, trace, layer, head, query)
    except LmttError as e:  # e.g. a family whose queries and keys do not rebuild its pattern
        st.info(str(e))


def _view(view: str, model, model_key: tuple, prompt: str, trace: Trace, layer: int,
          head: int, query: int) -> None:  # fmt: skip
    if view == "head view":
        _head_view(trace, layer, head, query)
    elif view == "model view":
        _model_view(trace, layer, head)
    elif view == "q·k breakdown":
        b = qk_breakdown(trace, layer, head, query)
        st.plotly_chart(qk_breakdown_figure(b), key="qk_breakdown")
        downloads("q·k", "qk_breakdown", lambda: static.qk_breakdown_static(b))
    else:
        qk_map_panel(model, model_key, prompt, layer, head)


def _head_view(trace: Trace, layer: int, head: int, query: int) -> None:
    follow = st.toggle("only the head and query picked above", value=True, key="hv_follow")
    heads, token = ([head], query) if follow else (None, None)
    st.caption("One colour per head; tick or untick heads; hover a token to see only its "
               "lines, click it to keep that filter.")  # fmt: skip
    html_frame(head_view_html(trace, layer, heads, token), height=trace.n_tokens * 20 + 80)
    downloads(
        "head view",
        "head_view",
        lambda: static.head_view_static(trace, layer, heads, token),
        lambda: head_view_svg(trace, layer, heads, token),
    )


def _model_view(trace: Trace, layer: int, head: int) -> None:
    st.caption("Click a small heatmap to open it large (or pick the layer and head above).")
    st.plotly_chart(
        model_view_figure(trace, (layer, head)), key="model_view", on_select=_open_picked,
        selection_mode="points",
    )  # fmt: skip
    st.plotly_chart(attention_heatmap(trace, layer, head), key="model_view_large")
    downloads("model view", "model_view", lambda: static.model_view_static(trace))


def _open_picked() -> None:
    """Model-view click: show the clicked head large (sets the layer and head pickers)."""
    picked = picked_head(state.chart_points("model_view"))
    if picked is not None:
        state.open_head(*picked)
