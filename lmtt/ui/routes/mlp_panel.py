"""Panel for an MLP block: top contributing neurons and their tokens."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lmtt.flow.lens import top_neurons
from lmtt.models.trace import Trace
from lmtt.ui.routes.neuron_examples_panel import neuron_examples_panel
from lmtt.viz.charts import neuron_bar_chart, router_chart
from lmtt.viz.tables import token_table
from lmtt.viz.text import token_label


def mlp_panel(trace: Trace, layer: int, pos: int, index_folder: str = "") -> None:
    st.subheader(f"MLP block L{layer} at position {pos} '{token_label(trace.token_strs[pos])}'")
    name = trace.dims.neuron_name
    moe = trace.dims.experts is not None
    if moe:  # which experts the router chose here, and with what weight
        weights = trace.router(layer)[pos].tolist()
        st.plotly_chart(router_chart(weights, "Router weights at this position"), key="router")
    views = top_neurons(trace, layer, pos, n=20, k=10)
    st.plotly_chart(
        neuron_bar_chart(
            [name(v.neuron) for v in views],
            [v.contribution for v in views],
            "Top " + ("expert units" if moe else "neurons") + " by contribution",
        ),
        key="neuron_bars",
    )
    st.dataframe(
        pd.DataFrame(
            {
                "neuron": [name(v.neuron) for v in views],
                "contribution": [round(v.contribution, 4) for v in views],
                ("activation × router weight" if moe else "activation"): [
                    round(v.activation, 4) for v in views
                ],
            }
        ),
        hide_index=True,
        key="neuron_table",
    )
    neuron = st.selectbox("neuron", [v.neuron for v in views], key=f"neuron_{layer}_{pos}",
                          format_func=name)  # fmt: skip
    view = next(v for v in views if v.neuron == neuron)
    st.caption(
        f"Tokens that {name(neuron)} (activation {view.activation:.3f}) promotes and "
        "suppresses at this position"
    )
    st.dataframe(token_table(view.tokens), hide_index=True, key="neuron_tokens")
    neuron_examples_panel(index_folder, trace.model_name, layer, neuron)
