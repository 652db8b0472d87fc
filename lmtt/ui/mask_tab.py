"""Masked-LM tab: top fillers for every [MASK] and one attention diagram per head."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lmtt.errors import LmttError
from lmtt.masked_lm import diagrams_zip, predict_from_logits
from lmtt.ui.attention_tab import get_attention_and_logits
from lmtt.viz import static


@st.cache_data(max_entries=256, show_spinner=False)
def _diagram_png(model_key: tuple, prompt: str, layer: int, head: int, _at) -> bytes:
    """One head's diagram, drawn once per prompt (every app rerun runs every tab)."""
    title = f"Layer {layer}, head {head}"
    fig = static.attention_diagram(_at.patterns[layer, head], list(_at.token_strs), title)
    return static.figure_bytes(fig)


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
        png = _diagram_png(model_key, prompt, layer, head, at)
        cols[head % len(cols)].image(png, caption=f"L{layer} H{head}")
    st.download_button(
        "all diagrams (every layer and head, with index.html) as ZIP",
        lambda: diagrams_zip(at),
        "attention-diagrams.zip",
        "application/zip",
        key="mask_diagrams_zip",
    )
