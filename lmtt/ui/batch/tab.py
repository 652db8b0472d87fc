"""Batch tab: open a batch folder (``lmtt batch``), rank its prompts by any head's or neuron's
contribution at the target, and open one prompt's graph in the Routes tab."""

from __future__ import annotations

import os
from functools import partial

import streamlit as st

from lmtt.errors import LmttError
from lmtt.index.batch import MANIFEST
from lmtt.ui.cache import get_batch, get_batch_ranking, settings
from lmtt.ui.paths import path_input


def _open_prompt(text: str) -> None:
    """Callback: the prompt becomes the sidebar's, and the Routes tab opens on it."""
    st.session_state["prompt"] = text
    st.session_state.pop("target", None)
    st.session_state["tab"] = "Routes"


def batch_tab(model) -> None:
    folder = path_input(
        "batch folder (`lmtt batch --prompts FILE --out DIR`)", "batch_folder",
        settings().offered_indexes(MANIFEST), os.environ.get("LMTT_BATCH", ""),
    )  # fmt: skip
    if not folder:
        st.caption("Run `lmtt batch` on a file of prompts once, then enter its folder here.")
        return
    try:
        batch = get_batch(folder)
        summary = batch.head_summary()
    except LmttError as e:
        st.warning(str(e))
        return
    made_with = batch.manifest["model"]
    st.caption(f"{batch.manifest['n_prompts']:,} prompts, made with **{made_with}**.")
    if made_with != model.name:
        st.info(f"The sidebar's model is {model.name}: a prompt opened here is traced with it.")
    st.dataframe(summary.head(12), hide_index=True, key="batch_heads")
    by = st.radio("rank the prompts by a", ["head", "neuron"], horizontal=True, key="batch_by")
    a, b = st.columns(2)
    layer = a.number_input("layer", 0, None, 0, key="batch_layer")
    unit = b.number_input(by, 0, None, 0, key="batch_unit")
    ranked = get_batch_ranking(folder, by, int(layer), int(unit), batch)
    if ranked.empty:
        st.caption(f"No prompt of this batch has that {by} (out of range, or never in a top).")
        return
    st.dataframe(ranked, hide_index=True, key="batch_ranked")
    prompts = ranked.set_index("prompt_id").prompt
    pick = st.selectbox(
        "prompt",
        prompts.index.tolist(),
        key=f"batch_pick_{by}_{layer}_{unit}",
        format_func=lambda i: f"{i}: {prompts[i][:70]}",
    )  # fmt: skip (a new
    # ranking starts from its top prompt)
    st.button("open its graph in Routes", key="batch_open",
              on_click=partial(_open_prompt, prompts[pick]))  # fmt: skip
