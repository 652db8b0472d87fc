"""The causal evidence in the app: the edge score, a foil, knock out and verify routes."""

import pytest

from tests.ui.test_app import _app, _inspect_box

PROMPT = "First Citizen: Before we proceed any further, hear me"


def _title(at) -> str:
    """The figure spec (JSON) of the route graph: the first chart."""
    return next(c.proto.spec for c in at.get("plotly_chart"))


@pytest.fixture(scope="module")
def demo_routes():
    """The routes the app shows by default (knockout at 0.04), from the Python API."""
    from lmtt.causal.metric import make_metric
    from lmtt.causal.scored import routes
    from lmtt.models import load_model
    from lmtt.models.catalog import load_model_catalog
    from lmtt.models.trace import run_trace

    catalog = load_model_catalog()
    model = load_model(catalog.get(catalog.default).resolved_source(), "cpu")
    trace = run_trace(model, PROMPT)
    return routes(model, trace, make_metric(model, trace), 0.04, "knockout")


def test_default_routes_are_knockout_scored_and_the_score_is_shared():
    at = _app(prompt=PROMPT)
    assert not at.exception and not at.error
    assert at.sidebar.selectbox(key="score").value == "knockout"
    assert "knockout scores" in _title(at)
    assert at.query_params["score"] == "knockout"
    at.sidebar.selectbox(key="score").set_value("proximity").run()
    assert at.sidebar.text_input(key="foil").disabled  # proximity has no sign
    assert "proximity scores" in _title(at) and at.query_params["score"] == "proximity"
    again = _app(prompt=PROMPT, score="verified")
    assert again.sidebar.selectbox(key="score").value == "verified"
    assert "verified scores" in _title(again)
    assert _app(prompt=PROMPT, score="magic").sidebar.selectbox(key="score").value == "knockout"


def test_knock_out_the_selected_block_shows_the_prediction_before_and_after(demo_routes):
    at = _app(prompt=PROMPT)
    assert sum(" edge " in o for o in _inspect_box(at).options) == len(demo_routes.edges)
    mlp = next(n for n in demo_routes.nodes if n.kind == "mlp")
    _inspect_box(at).set_value(mlp.id).run()
    assert not at.exception
    assert at.selectbox(key="knockout_what").value == "the MLP block's write"
    at.button(key="knockout_run").click().run()
    assert not at.exception and not at.error
    (m,) = [m for m in at.metric if m.label.startswith("log p(")]
    assert "was" in m.delta
    captions = [c.value for c in at.caption]
    assert "top tokens before" in captions
    assert "top tokens without the MLP block's write" in captions


def test_knock_out_an_edge_and_verify_the_routes(demo_routes):
    at = _app(prompt=PROMPT)
    edge = next(e for e in demo_routes.edges if e.kind == "attention")
    _inspect_box(at).set_value(edge.id).run()
    assert at.selectbox(key="knockout_what").options == ["this edge"]
    at.button(key="verify_run").click().run()
    assert not at.exception and not at.error
    labels = {m.label: m.value for m in at.metric}
    assert -2.0 < float(labels["completeness"]) < 2.0  # a share of the span (may overshoot)
    n_edges = sum(" edge " in o for o in _inspect_box(at).options)
    assert labels["edges without effect"].endswith(f"of {n_edges}")
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("Measured effect of each edge" in s for s in specs)
    assert any("completeness (area" in s for s in specs)


def test_a_foil_gives_contrastive_routes_and_a_bad_foil_a_message():
    at = _app(prompt=PROMPT)
    at.sidebar.text_input(key="foil").input(" the").run()
    assert not at.exception and not at.error
    assert any("logit(prediction) - logit(' the')" in c.value for c in at.caption)
    assert at.query_params["foil"] == " the"
    at.sidebar.text_input(key="foil").input("two tokens").run()
    assert not at.exception
    assert any("give one token" in e.value for e in at.error)


def test_an_attention_edge_shows_why_its_head_attends(demo_routes):
    at = _app(prompt=PROMPT)
    edge = next(e for e in demo_routes.edges if e.kind == "attention")
    _inspect_box(at).set_value(edge.id).run()
    assert not at.exception and not at.error
    assert any("Why does the head attend here?" in m.value for m in at.markdown)
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("(query) \\u00d7" in s or "(query) ×" in s for s in specs)
    assert any("terms) sum to" in c.value for c in at.caption)
    at.toggle(key="score_contrast").set_value(True).run()
    assert not at.exception
    assert any("rather than" in s for s in (c.proto.spec for c in at.get("plotly_chart")))


def test_the_key_and_query_edges_toggle_draws_dashed_edges():
    at = _app(prompt=PROMPT, score="proximity")
    n = len(_inspect_box(at).options)
    assert '"dash"' not in _title(at)
    at.sidebar.toggle(key="qk_edges").set_value(True).run()
    assert not at.exception and not at.error
    assert '"dash":"dash"' in _title(at).replace(" ", "")
    options = _inspect_box(at).options
    assert len(options) > n and any(o.startswith("key edge") for o in options)


def test_a_family_without_removable_edges_falls_back_to_proximity(tmp_path):
    """OPT's attention pattern is not reachable before its heads' outputs: the knockout score
    says so and the tab shows the proximity routes."""
    from lmtt.testing import make_tiny_model

    folder = make_tiny_model(tmp_path / "opt", "opt", n_layers=2)
    at = _app(model=str(folder), prompt="When Mary and John went to the store")
    assert not at.exception and not at.error
    assert any("Showing the proximity routes instead" in w.value for w in at.warning)
    assert "proximity scores" in _title(at)
