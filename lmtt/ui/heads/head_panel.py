"""The picked head of the head catalogue: its scores, and its attention where it scores
highest on the chosen metric (with what it writes there, for a prompt)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lmtt.attention.heads import BATCH_METRICS, ON_RANDOM, HeadCatalogue
from lmtt.errors import LmttError
from lmtt.flow.lens import head_tokens
from lmtt.ui.cache import get_attention_trace, get_trace
from lmtt.viz.charts import token_heatmap
from lmtt.viz.tables import token_table


def _where(catalogue: HeadCatalogue, metric: str, layer: int, head: int):
    """The prompt (text) or random sequence (ids) where the head scores highest."""
    best = int(catalogue.best_prompt[metric][layer, head])
    if metric in ON_RANDOM:
        return tuple(catalogue.random_sequences[best].tolist()), (
            "a repeated random sequence where its {metric} is highest"
        )
    if metric in BATCH_METRICS:  # a batch's prompts are not the catalogue's: show an example
        return catalogue.prompt_tokens[0], "an example prompt"
    return catalogue.prompt_tokens[best], "the prompt where its {metric} is highest"


def head_panel(catalogue: HeadCatalogue, name: str, metric: str, model_key, model) -> None:
    layer, head = (int(x) for x in name[1:].split("H"))
    st.subheader(f"Head {name}")
    values = {m: float(catalogue.metrics[m][layer, head]) for m in catalogue.names}
    st.dataframe(pd.DataFrame([values]), hide_index=True, key="head_scores")
    sequence, what = _where(catalogue, metric, layer, head)
    try:
        trace = get_attention_trace(model_key, sequence, model)
    except LmttError as e:
        st.error(str(e))
        return
    st.plotly_chart(
        token_heatmap(
            trace.pattern(layer)[head].numpy(),
            list(trace.token_strs),
            f"{name}'s attention on {what.format(metric=metric)}",
        ),  # fmt: skip
        key="head_pattern",
    )
    if metric in ON_RANDOM or not trace.weights or not trace.weights.has_lens:
        return
    route_trace = get_trace(model_key, sequence, model)
    pos = route_trace.n_tokens - 1
    st.caption(f"Tokens {name}'s output at the last position promotes and suppresses")
    st.dataframe(token_table(head_tokens(route_trace, layer, head, pos, k=8)), hide_index=True,
                 key="head_promoted")  # fmt: skip
