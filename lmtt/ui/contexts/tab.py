"""Context search tab (exBERT): corpus tokens whose hidden state is most like a prompt token's."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from lmtt.errors import LmttError
from lmtt.index.context_index import META, histograms
from lmtt.ui.cache import get_context_index, get_context_matches, settings
from lmtt.ui.downloads import downloads
from lmtt.ui.paths import path_input
from lmtt.viz.charts import tag_histogram
from lmtt.viz.static import tag_histograms_static
from lmtt.viz.text import token_label


def _last_word(model, tokens: list[str]) -> int:
    """Default token: the last one that is not a special token ([SEP], BOS, ...)."""
    special = set(model.tokenizer.all_special_tokens)
    return max((i for i, t in enumerate(tokens) if t not in special), default=0)


def context_tab(model, model_key: tuple, prompt: str) -> None:
    folder = path_input(
        "context index folder (`lmtt index-contexts --corpus PATH --out DIR`)",
        "context_index",
        settings().offered_indexes(META),
        os.environ.get("LMTT_CONTEXT_INDEX", ""),
    )
    if not folder:
        st.caption("Build an index once with `lmtt index-contexts`, then enter its folder here.")
        return
    try:
        index = get_context_index(folder)
        tokens = model.token_strings(model.encode(prompt))
        c1, c2 = st.columns(2)
        pos = c1.selectbox(
            "token",
            range(len(tokens)),
            index=_last_word(model, tokens),
            format_func=lambda i: f"{i}: {token_label(tokens[i])}",
            key="ctx_pos",
        )
        layers = index.meta["layers"]
        middle = len(layers) // 2  # layer 0 is the embeddings: a middle layer shows context
        layer = c2.selectbox("layer (0 = embeddings)", layers, index=middle, key="ctx_layer")
        matches = get_context_matches(model_key, folder, prompt, pos, layer, 50, model, index)
    except LmttError as e:
        st.warning(str(e))
        return
    table = pd.DataFrame(
        {
            "cosine": [round(m.similarity, 3) for m in matches],
            "token": [m.token for m in matches],
            "UPOS": [m.upos for m in matches],
            "deprel": [m.deprel for m in matches],
            "in context": [m.in_context() for m in matches],
        }
    )
    wide = {"in context": st.column_config.TextColumn(width="large")}  # the whole context
    st.dataframe(table, hide_index=True, key="ctx_matches", column_config=wide)
    upos, deprel = histograms(matches)
    if upos:
        a, b = st.columns(2)
        a.plotly_chart(tag_histogram(upos, f"UPOS of the {len(matches)} matches"), key="ctx_upos")
        b.plotly_chart(tag_histogram(deprel, "Dependency relations"), key="ctx_deprel")
        title = f"{len(matches)} nearest contexts of '{token_label(tokens[pos])}', layer {layer}"
        downloads("histograms", "context_tags", lambda: tag_histograms_static(upos, deprel, title))
    else:
        st.caption("The corpus has no UPOS tags (index a CoNLL-U corpus for the histograms).")
