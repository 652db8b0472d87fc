"""Masked-LM tab: top fillers for every [MASK] and one attention diagram per head."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lmtt.attention.masked_lm import predict_from_trace
from lmtt.errors import LmttError
from lmtt.ui.cache import get_attention_trace, get_diagram_png
from lmtt.viz.diagrams import diagrams_zip


def mask_tab(model, model_key: tuple, prompt: str) -> None:
    if not model.has_mlm_head:
        st.info(
            f"{model.name} has no masked-LM head. Pick a model saved as *ForMaskedLM "
            "(e.g. bert-base-uncased) to fill in [MASK] tokens."
        )
        return
    try:
        trace = get_attention_trace(model_key, prompt, model)
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
        png = get_diagram_png(model_key, prompt, layer, head, trace)
        cols[head % len(cols)].image(png, caption=f"L{layer} H{head}")
    st.download_button(
        "all diagrams (every layer and head, with index.html) as ZIP",
        lambda: diagrams_zip(trace),
        "attention-diagrams.zip",
        "application/zip",
        key="mask_diagrams_zip",
    )
