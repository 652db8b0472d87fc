"""The app's main flow for one family of each block layout: parallel (GPT-NeoX), sandwich
norms with soft-capping (Gemma 2), mixture of experts (Mixtral); encoders are in test_app."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lmtt.flow.graph import routes
from lmtt.models import load_model, run_trace
from lmtt.testing import make_tiny_model

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.mark.parametrize("arch", ["gpt_neox", "gemma2", "mixtral"])
def test_routes_tab_and_every_panel(arch, tmp_path):
    folder = make_tiny_model(tmp_path / arch, arch, n_layers=2)
    graph = routes(run_trace(load_model(str(folder), device="cpu"), PROMPT), threshold=0.01)
    one_of_each = {}  # a node of each kind and an edge of each kind
    for e in (*graph.nodes, *graph.edges):
        one_of_each.setdefault((type(e).__name__, e.kind), e.id)
    assert (("Node", "attn_out") in one_of_each) == (arch != "gpt_neox")  # parallel: no mid
    assert ("Node", "mlp") in one_of_each
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(model=str(folder), prompt=PROMPT, threshold="0.01", score="proximity")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    for element in one_of_each.values():
        at.selectbox(key="selection").set_value(element).run()
        assert not at.exception and at.subheader, element
        if element.startswith("mlp:") and arch == "mixtral":  # experts' units and routing
            neurons = at.selectbox(key="neuron_" + "_".join(element.split(":")[1:]))
            assert all(label.startswith("E") for label in neurons.options)
            assert any("Router weights" in str(c.proto) for c in at.get("plotly_chart"))
