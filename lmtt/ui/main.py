"""The lmtt app: pick a model and prompt, walk the routes, inspect any component; the classic
attention views, masked-LM prediction and context search in their own tabs."""

from __future__ import annotations

import streamlit as st

from lmtt.errors import LmttError
from lmtt.ui import state
from lmtt.ui.attention.tab import attention_tab
from lmtt.ui.batch.tab import batch_tab
from lmtt.ui.cache import get_model, settings
from lmtt.ui.contexts.tab import context_tab
from lmtt.ui.heads.tab import heads_tab
from lmtt.ui.masked_lm.tab import mask_tab
from lmtt.ui.routes.tab import routes_tab
from lmtt.ui.sidebar import sidebar


def main() -> None:
    st.set_page_config(page_title="lmtt", page_icon="🔎", layout="wide")
    try:
        host = settings()
    except LmttError as e:  # a broken settings file: nothing runs until it is fixed
        st.error(f"lmtt's hosting settings are invalid: {e}")
        return
    chosen = sidebar()
    st.title("lmtt · why did the model predict this token?")
    refusal = state.take_refusal()
    if refusal:
        st.error(refusal)
    if not chosen.model:
        st.info("Enter a hub model name or a local model folder in the sidebar.")
        return
    model = _load(chosen, host)
    if model is None:
        return
    if not chosen.prompt:
        st.warning("The prompt is empty: type some text in the sidebar or pick an example.")
        return
    try:
        host.check_prompt(chosen.prompt)  # before the tokenizer sees it
        host.check_tokens(len(model.encode(chosen.prompt)))
    except LmttError as e:
        st.error(str(e))
        return
    _tabs(model, (chosen.model, chosen.device, chosen.dtype), chosen)


def _load(chosen, host):
    """The chosen model, or None (with the reason shown)."""
    try:
        host.check_model(chosen.model, state.offered_models())
        with st.spinner(f"Loading {chosen.model}…"):
            return get_model(chosen.model, chosen.device, chosen.dtype)
    except LmttError as e:
        st.error(f"Could not load **{chosen.model}**: {e}")
        return None


TABS = ("Routes", "Attention", "Heads", "Batch", "Masked LM", "Context search")


def _tabs(model, model_key: tuple, chosen) -> None:
    """The tabs; only the open one is computed (the open tab is in the URL)."""
    draw = (
        lambda: routes_tab(model, model_key, chosen),
        lambda: attention_tab(model, model_key, chosen.prompt),
        lambda: heads_tab(model, model_key, chosen.prompt),
        lambda: batch_tab(model),
        lambda: mask_tab(model, model_key, chosen.prompt),
        lambda: context_tab(model, model_key, chosen.prompt),
    )
    tabs = st.tabs(TABS, key="tab", on_change="rerun", bind="query-params")
    for tab, render in zip(tabs, draw, strict=True):
        if tab.open:
            with tab:
                render()
