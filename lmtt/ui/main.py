"""The lmtt app: pick a model and prompt, walk the routes, inspect any component; the classic
attention views, masked-LM prediction and context search in their own tabs."""

from __future__ import annotations

import streamlit as st

from lmtt.errors import LmttError
from lmtt.ui.attention.tab import attention_tab
from lmtt.ui.cache import get_model
from lmtt.ui.contexts.tab import context_tab
from lmtt.ui.masked_lm.tab import mask_tab
from lmtt.ui.routes.tab import routes_tab
from lmtt.ui.sidebar import sidebar


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
        routes_tab(model, model_key, settings)
    with tabs[1]:
        attention_tab(model, model_key, settings.prompt)
    with tabs[2]:
        mask_tab(model, model_key, settings.prompt)
    with tabs[3]:
        context_tab(model, settings.prompt)
