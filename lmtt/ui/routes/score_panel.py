"""Why the head attends here: the selected attention edge's score split over upstream parts."""

from __future__ import annotations

import streamlit as st

from lmtt.errors import LmttError
from lmtt.flow.graph import Edge
from lmtt.ui.cache import get_score_decomposition
from lmtt.viz.score_figures import score_pairs_figure
from lmtt.viz.text import token_label


def _heads_by_weight(trace, layer: int, query: int, key: int) -> list[int]:
    row = trace.pattern_rows(layer, [query])[:, 0, key]
    return row.argsort(descending=True).tolist()


def score_panel(edge: Edge, trace, model_key: tuple, prompt: str, model) -> None:
    layer, query, key = edge.target.layer, edge.target.pos, edge.source.pos
    tokens = trace.token_strs
    st.markdown(
        f"**Why does the head attend here?** Query {query} '{token_label(tokens[query])}' → "
        f"key {key} '{token_label(tokens[key])}' in layer {layer}: the head's score split into "
        "(query-side part × key-side part) terms that sum to it exactly."
    )
    heads = _heads_by_weight(trace, layer, query, key)
    weights = trace.pattern_rows(layer, [query])[:, 0, key].tolist()
    head = st.selectbox("head", heads, key=f"score_head_{layer}_{query}_{key}",
                        format_func=lambda h: f"H{h} (attention {weights[h]:.2f})")  # fmt: skip
    row = trace.pattern_rows(layer, [query])[head, 0].clone()
    row[key] = -1.0
    row[~trace.key_mask(layer)[query]] = -1.0  # keys it cannot see (later, or out of window)
    runner_up = int(row.argmax())
    contrast = st.toggle(
        f"contrast with the next key the head attends to: {runner_up} "
        f"'{token_label(tokens[runner_up])}' (what the softmax compares)",
        key="score_contrast",
    )
    other = runner_up if contrast and runner_up != key else None
    try:
        s = get_score_decomposition(model_key, prompt, layer, head, query, key, other, model)
    except LmttError as e:
        st.info(str(e))
        return
    st.plotly_chart(score_pairs_figure(s, tokens), key="score_pairs")
    st.caption(
        f"{len(s.labels)} parts a side ({len(s.labels) ** 2} terms) sum to {s.total:.3f}; the "
        f"model's {'score difference' if other is not None else 'score'} is {s.score:.3f}. "
        "Red terms raise the score, blue lower it."
    )
