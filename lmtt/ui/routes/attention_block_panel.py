"""Panel for an attention block or edge of the routes: head contributions, the picked head's
attention and contribution maps, and the tokens its output promotes and suppresses."""

from __future__ import annotations

import streamlit as st

from lmtt.flow.lens import head_tokens
from lmtt.models.trace import Trace
from lmtt.ui.cache import get_layer_contributions
from lmtt.viz.charts import head_bar_chart, token_heatmap
from lmtt.viz.tables import token_table
from lmtt.viz.text import token_label

MAP_TOKENS = 128  # longer prompts map a window of this many positions ending at the query


def _window(trace: Trace, pos: int) -> range:
    """The positions the maps show: all of a short prompt, else those up to ``pos``."""
    if trace.n_tokens <= MAP_TOKENS:
        return range(trace.n_tokens)
    start = max(0, pos + 1 - MAP_TOKENS)
    return range(start, start + MAP_TOKENS)


def attention_block_panel(trace: Trace, trace_key, layer: int, pos: int, renorm,
                          source: int | None = None) -> None:  # fmt: skip
    """The block at ``pos``; with ``source`` (an edge from it), the maps outline the query's
    row and the source's column."""
    token = token_label(trace.token_strs[pos])
    st.subheader(f"Attention block L{layer} at position {pos} '{token}'")
    window = _window(trace, pos)
    queries = None if len(window) == trace.n_tokens else tuple(window)
    full = get_layer_contributions(trace_key, layer, renorm, trace, queries)
    row = pos - window.start  # the query's row among those computed
    if queries is not None:
        shown = f"positions {window.start}-{window[-1]}, a window with the query"
        st.caption(f"A long prompt: the maps show {shown}, of {trace.n_tokens:,}.")
    per_head = full.per_head[row].tolist()
    best = max(range(len(per_head)), key=per_head.__getitem__)
    head = st.selectbox(
        "head",
        list(range(len(per_head))),
        index=best,
        key=f"head_{layer}_{pos}",
        format_func=lambda h: f"H{h} ({per_head[h]:.3f})",
    )
    st.plotly_chart(
        head_bar_chart(
            per_head, f"Head contributions (residual {float(full.residual[row]):.3f})", head
        ),
        key="head_bars",
    )
    keys = slice(window.start, window.stop)
    tokens = list(trace.token_strs[keys])
    attention = trace.pattern_rows(layer, list(window))[head][:, keys]
    mark = None if source is None or source not in window else (row, source - window.start)
    maps = {"first": window.start, "highlight": mark}
    left, right = st.columns(2)
    with left:
        st.plotly_chart(
            token_heatmap(attention.numpy(), tokens, f"Attention of L{layer}H{head}", **maps),
            key="attn_map",
        )
    with right:
        st.plotly_chart(
            token_heatmap(
                full.heads[:, keys, head].numpy(),
                tokens,
                f"Contributions of L{layer}H{head}",
                "Oranges",
                **maps,
            ),  # fmt: skip
            key="contrib_map",
        )
    st.caption(
        f"Tokens that L{layer}H{head}'s output at position {pos} promotes and suppresses "
        "(direct effect through the unembedding)"
    )
    st.dataframe(
        token_table(head_tokens(trace, layer, head, pos, k=10)), hide_index=True, key="head_tokens"
    )
