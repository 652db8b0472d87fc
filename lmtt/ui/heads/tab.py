"""Heads tab: every head as a point by two metrics of the head catalogue (colour by layer);
a click (or the picker) opens the head (lmtt.ui.heads.head_panel)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from lmtt.config import example_prompts
from lmtt.errors import LmttError
from lmtt.ui import state
from lmtt.ui.cache import get_batch, get_head_catalogue
from lmtt.ui.heads.head_panel import head_panel
from lmtt.viz.head_figures import LABELS, head_scatter

SCATTER_KEY = "heads_scatter"


def _on_select() -> None:
    points = state.chart_points(SCATTER_KEY)
    names = [p.get("customdata") for p in points if isinstance(p.get("customdata"), str)]
    if names:
        st.session_state["picked_head"] = names[0]


def _with_batch(catalogue, model):
    """The catalogue with route importance from the Batch tab's folder, when it holds a batch
    of this model (else as it is)."""
    folder = st.session_state.get("batch_folder") or ""
    if not folder:
        return catalogue
    try:
        batch = get_batch(folder)
        if batch.manifest["model"] != model.name:
            return catalogue
        summary = batch.head_summary()
    except LmttError:
        return catalogue  # the Batch tab says what is wrong with the folder
    name = Path(folder).name  # not the server's path (hosted mode shows names only)
    st.caption(f"Route importance from the batch {name} ({len(summary)} heads).")
    return catalogue.with_batch(summary)


def heads_tab(model, model_key: tuple, prompt: str) -> None:
    st.caption(
        "Every head scored on the example prompts and the sidebar's prompt (previous-token and "
        "first-token attention, entropy) and on 4 sequences of 24 random tokens repeated once "
        "(induction and duplicate-token attention): the share of its attention where such a "
        "head looks (TransformerLens's head detector measure)."
    )
    prompts = tuple(dict.fromkeys([*example_prompts(), prompt]))
    try:
        catalogue = get_head_catalogue(model_key, prompts, model)
    except LmttError as e:
        st.error(str(e))
        return
    catalogue = _with_batch(catalogue, model)
    left, right = st.columns(2)
    names = catalogue.names
    x = left.selectbox("x axis", names, index=0, key="heads_x", format_func=LABELS.get)
    y = right.selectbox("y axis", names, index=1, key="heads_y", format_func=LABELS.get)
    names = [r["name"] for r in catalogue.rows()]
    if st.session_state.get("picked_head") not in names:
        st.session_state["picked_head"] = names[catalogue.top(y, 1)[0][0] * catalogue.shape[1]
                                                + catalogue.top(y, 1)[0][1]]  # fmt: skip
    picked = st.session_state["picked_head"]
    st.plotly_chart(head_scatter(catalogue, x, y, picked), key=SCATTER_KEY,
                    on_select=_on_select, selection_mode="points")  # fmt: skip
    st.selectbox("head", names, key="picked_head")
    head_panel(catalogue, picked, y, model_key, model)
