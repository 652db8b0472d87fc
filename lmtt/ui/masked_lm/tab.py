"""Masked-LM tab: top fillers for every [MASK] and one attention diagram per head."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lmtt.attention.masked_lm import predict_from_trace
from lmtt.errors import LmttError
from lmtt.models.catalog import load_model_catalog
from lmtt.ui import state
from lmtt.ui.cache import get_attention_trace, get_diagram_png, get_model, settings
from lmtt.viz.diagrams import diagrams_zip

EXAMPLE = "First Citizen: Before we {mask} any further, hear me speak."


def masked_lm_for(model, model_key: tuple):
    """(model, key) of the tab: the chosen model if it has a masked-LM head, else the
    catalog's masked LM (the shipped demo), or (None, None) with the reason shown."""
    if model.has_mlm_head:
        return model, model_key
    name = load_model_catalog().masked_lm
    try:
        if not name:
            raise LmttError("the model catalog names no masked LM")
        settings().check_model(name, state.offered_models())
        with st.spinner(f"Loading {name}…"):
            fallback = get_model(name, *model_key[1:])
    except LmttError as e:
        st.info(
            f"{model.name} has no masked-LM head. Pick a model saved as *ForMaskedLM (e.g. "
            f"bert-base-uncased) to fill in [MASK] tokens. (The demo masked LM cannot stand "
            f"in: {e})"
        )
        return None, None
    st.caption(
        f"{model.name} has no masked-LM head, so this tab uses **{name}**, lmtt's demo masked "
        "LM. Pick a *ForMaskedLM model in the sidebar to use it here."
    )
    return fallback, (name, *model_key[1:])


def mask_tab(model, model_key: tuple, prompt: str) -> None:
    model, model_key = masked_lm_for(model, model_key)
    if model is None:
        return
    mask = model.tokenizer.mask_token
    text = st.text_input(
        f"sentence with {mask}",
        value=prompt if mask in prompt else EXAMPLE.format(mask=mask),
        key="mask_prompt",
        max_chars=settings().max_prompt_chars,
    )
    try:
        settings().check_prompt(text)
        settings().check_tokens(len(model.encode(text)))
        trace = get_attention_trace(model_key, text, model)
        predictions = predict_from_trace(model, trace, k=5)
    except LmttError as e:
        st.warning(str(e))
        return
    for pred in predictions:
        st.markdown(f"**[MASK] at position {pred.position}**")
        st.dataframe(
            pd.DataFrame(pred.fillers, columns=["token", "probability"]),
            hide_index=True,
            key=f"mask_{pred.position}",
        )
    layer = st.selectbox("diagrams of layer", range(trace.n_layers), key="mask_layer")
    cols = st.columns(min(4, trace.n_heads))
    for head in range(trace.n_heads):
        png = get_diagram_png(model_key, text, layer, head, trace)
        cols[head % len(cols)].image(png, caption=f"L{layer} H{head}")
    st.download_button(
        "all diagrams (every layer and head, with index.html) as ZIP",
        lambda: diagrams_zip(trace),
        "attention-diagrams.zip",
        "application/zip",
        key="mask_diagrams_zip",
    )
