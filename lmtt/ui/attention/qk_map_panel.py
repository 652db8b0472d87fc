"""Query-key map panel (AttentionViz): one head's queries and keys of many prompts or of a
corpus in one 2-D space."""

from __future__ import annotations

import os

import streamlit as st

from lmtt.attention.qk_map import available_methods
from lmtt.config import example_prompts
from lmtt.errors import LmttError
from lmtt.ui.cache import get_corpus_map, get_prompts_map, settings
from lmtt.ui.downloads import downloads
from lmtt.ui.paths import path_input
from lmtt.viz import static
from lmtt.viz.attention_figures import qk_map_figure

MAX_HOSTED_PROMPTS = 64


def qk_map_panel(model, model_key: tuple, prompt: str, layer: int, head: int) -> None:
    source = st.radio(
        "points from", ["prompts", "corpus"], horizontal=True, key="qk_source",
        help="AttentionViz maps many prompts: type them, or stream them from a corpus file",
    )  # fmt: skip
    c1, c2 = st.columns(2)
    method = c1.selectbox("projection", available_methods(), key="qk_method")
    colour = c2.selectbox("colour by", ["kind", "position"], key="qk_colour")
    try:
        with st.spinner("Projecting queries and keys…"):
            m = _map_from(source, model, model_key, prompt, layer, head, method)
    except LmttError as e:
        st.warning(str(e))
        return
    if m is None:
        return
    st.plotly_chart(qk_map_figure(m, colour), key="qk_map")
    downloads("query-key map", "qk_map", lambda: static.qk_map_static(m))


def _map_from(source: str, model, model_key, prompt, layer, head, method):
    if source == "corpus":
        a, b = st.columns([3, 1])
        corpus = path_input(
            "corpus file or folder (.txt, .jsonl, .conllu)",
            "qk_corpus",
            settings().offered_corpora(),
            os.environ.get("LMTT_QK_CORPUS", ""),
            where=a,
        )
        max_tokens = int(b.number_input("tokens", 10, 20_000, 2000, step=500, key="qk_tokens"))
        if not corpus:
            st.caption("Enter a corpus path, e.g. the UD English EWT folder.")
            return None
        cm = get_corpus_map(model_key, corpus, layer, head, method, max_tokens, model)
        note = f" ({cm.skipped_long} longer than the context left out)" if cm.skipped_long else ""
        st.caption(f"{cm.tokens:,} tokens of {cm.documents:,} documents{note}.")
        return cm.map
    text = st.text_area(
        "prompts for the map (one per line; default: the example prompts and this prompt)",
        key="qk_map_prompts",
    )
    prompts = [ln for ln in text.splitlines() if ln.strip()] or [*example_prompts(), prompt]
    host = settings()
    if host.hosted:  # each prompt within the caps, and not too many of them
        prompts = prompts[:MAX_HOSTED_PROMPTS]
        for p in prompts:
            host.check_prompt(p)
    m, skipped = get_prompts_map(model_key, tuple(prompts), layer, head, method, model)
    if m is None:
        st.warning("No prompt could be mapped: " + "; ".join(skipped[:3]))
    elif skipped:
        st.caption(f"Skipped {len(skipped)} prompt(s): {skipped[0]}")
    return m
