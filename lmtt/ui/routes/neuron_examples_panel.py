"""Panel: a neuron's top-activating corpus examples from a neuron index (``lmtt index-neurons``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lmtt.errors import LmttError
from lmtt.ui.cache import get_neuron_index
from lmtt.viz.charts import tag_histogram


def _clip(text: str, n: int, left: bool) -> str:
    text = text.replace("\n", " ⏎ ")
    if len(text) <= n:
        return text
    return "…" + text[-n:] if left else text[:n] + "…"


def neuron_examples_panel(folder: str, model_name: str, layer: int, neuron: int) -> None:
    if not folder:
        st.caption(
            "No neuron index: build one with `lmtt index-neurons --corpus PATH --out DIR` and "
            "enter its folder in the sidebar to see this neuron's top corpus examples."
        )
        return
    try:
        index = get_neuron_index(folder)
        summary = index.summary(layer, neuron)
        examples = index.top_examples(layer, neuron)
    except LmttError as e:
        st.warning(str(e))
        return
    if index.model != model_name:
        st.warning(f"This index was built for {index.model}, not {model_name}.")
    st.markdown(
        f"**Top corpus examples of L{layer} N{neuron}**: max {summary.max:.3f}, "
        f"mean {summary.mean:.3f}, active on {summary.fraction_active:.1%} of "
        f"{summary.count:,} tokens"
    )
    table = pd.DataFrame(
        {
            "activation": [round(e.activation, 3) for e in examples],
            "before": [_clip(e.left, 60, True) for e in examples],
            "token": [e.token.replace("\n", "⏎") for e in examples],
            "after": [_clip(e.right, 60, False) for e in examples],
            "document": [f"{e.doc_id}@{e.position}" for e in examples],
        }
    )
    st.dataframe(table, hide_index=True, key="neuron_examples")
    tags = index.upos_histogram(layer, neuron)
    if tags:
        st.plotly_chart(
            tag_histogram(tags, f"UPOS of the top {len(examples)} examples"), key="upos_hist"
        )
