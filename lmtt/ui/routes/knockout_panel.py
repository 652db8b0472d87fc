"""Knock the selected part out: the prediction before and after, from a real forward pass."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lmtt.causal.edges import edge_intervention
from lmtt.causal.interventions import AttentionWrite, HeadWrite, Intervention, MlpWrite, Neuron
from lmtt.errors import LmttError
from lmtt.flow.graph import Edge, Node
from lmtt.ui.cache import get_knockout
from lmtt.viz.text import percent, token_label


def knockout_choices(element, trace) -> dict[str, Intervention]:
    """What the selected element offers to knock out: label -> intervention. An edge is
    removed; a block's write, the head open in its panel, or the neuron open in its panel is
    set to zero at the element's position."""
    if isinstance(element, Edge):
        if element.kind in ("key", "query"):
            return {}  # a part that made a score, not a path: knock out its block instead
        return {"this edge": edge_intervention(element)}
    node: Node = element
    if node.kind == "attn_out":
        head = st.session_state.get(f"head_{node.layer}_{node.pos}")
        out = {"the attention block's write": Intervention(AttentionWrite(node.layer, node.pos))}
        if head is not None:
            out[f"head L{node.layer}H{head}'s write"] = Intervention(
                HeadWrite(node.layer, int(head), node.pos)
            )
        return out
    if node.kind == "mlp":
        out = {"the MLP block's write": Intervention(MlpWrite(node.layer, node.pos))}
        neuron = st.session_state.get(f"neuron_{node.layer}_{node.pos}")
        if neuron is not None and trace.dims.experts is None:
            name = trace.dims.neuron_name(int(neuron))
            out[f"neuron {name}"] = Intervention(Neuron(node.layer, int(neuron), node.pos))
        return out
    return {}  # a residual state is the sum of the edges into it: knock those out


def _table(scores) -> pd.DataFrame:
    return pd.DataFrame(
        {"token": [token_label(s.token) for s in scores], "p": [percent(s.prob) for s in scores]}
    )


def knockout_panel(element, trace, trace_key, model, target: int, foil: str) -> None:
    choices = knockout_choices(element, trace)
    if not choices:
        st.caption("Knock out: pick a value-path edge (attention, residual, MLP) or a block.")
        return
    st.markdown("**Knock out** (a real forward pass with the part removed)")
    left, right = st.columns([3, 1])
    what = left.selectbox("part to remove", list(choices), key="knockout_what")
    if not right.button("knock out", key="knockout_run"):
        return
    try:
        k = get_knockout(trace_key, target, foil, (choices[what],), model, trace)
    except LmttError as e:
        st.warning(str(e))
        return
    st.metric(
        k.metric.describe(trace.vocab), f"{k.after:.3f}", f"{k.change:+.3f} (was {k.before:.3f})"
    )
    before, after = st.columns(2)
    before.caption("top tokens before")
    before.dataframe(_table(k.top_before), hide_index=True, key="knockout_before")
    after.caption(f"top tokens without {what}")
    after.dataframe(_table(k.top_after), hide_index=True, key="knockout_after")
