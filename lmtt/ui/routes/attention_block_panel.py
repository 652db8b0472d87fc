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


def attention_block_panel(trace: Trace, trace_key, layer: int, pos: int, renorm) -> None:
    token = token_label(trace.token_strs[pos])
    st.subheader(f"Attention block L{layer} at position {pos} '{token}'")
    full = get_layer_contributions(trace_key, layer, renorm, trace)  # every query of the layer
    per_head = full.per_head[pos].tolist()
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
            per_head, f"Head contributions (residual {float(full.residual[pos]):.3f})", head
        ),
        key="head_bars",
    )
    left, right = st.columns(2)
    with left:
        st.plotly_chart(
            token_heatmap(
                trace.pattern(layer)[head].numpy(),
                list(trace.token_strs),
                f"Attention of L{layer}H{head}",
            ),
            key="attn_map",
        )
    with right:
        st.plotly_chart(
            token_heatmap(
                full.heads[:, :, head].numpy(),
                list(trace.token_strs),
                f"Contributions of L{layer}H{head}",
                "Oranges",
            ),
            key="contrib_map",
        )
    st.caption(
        f"Tokens that L{layer}H{head}'s output at position {pos} promotes and suppresses "
        "(direct effect through the unembedding)"
    )
    st.dataframe(
        token_table(head_tokens(trace, layer, head, pos, k=10)), hide_index=True, key="head_tokens"
    )
