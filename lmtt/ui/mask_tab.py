"""Masked-LM tab: top fillers for every [MASK] and one attention diagram per head."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lmtt.errors import LmttError
from lmtt.masked_lm import predict_from_logits
from lmtt.ui.attention_tab import get_attention_and_logits
from lmtt.viz import static


def mask_tab(model, model_key: tuple, prompt: str) -> None:
    if not model.has_mlm_head:
        st.info(
            f"{model.name} has no masked-LM head. Pick a model saved as *ForMaskedLM "
            "(e.g. bert-base-uncased) to fill in [MASK] tokens."
        )
        return
    try:
        logits, at = get_attention_and_logits(model_key, prompt, model)
        predictions = predict_from_logits(model, at.tokens, logits, k=5)
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
    layer = st.selectbox("diagrams of layer", range(at.n_layers), key="mask_layer")
    cols = st.columns(min(4, at.n_heads))
    for head in range(at.n_heads):
        fig = static.attention_diagram(
            at.patterns[layer, head], list(at.token_strs), f"Layer {layer}, head {head}"
        )
        cols[head % len(cols)].image(static.figure_bytes(fig), caption=f"L{layer} H{head}")
