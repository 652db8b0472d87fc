"""Routes scored by causal effect: on the hand-built circuit the knockout routes are the true
circuit; signed scores and a foil give contrastive routes; JSON keeps the score."""

import pytest

from lmtt.causal.metric import make_metric
from lmtt.causal.scored import attribution_all, route_graphs, routes
from lmtt.errors import EmptyRoutesError, InterventionError
from lmtt.flow.graph import RouteGraph
from lmtt.testing.circuits import ANSWER, INDUCTION_PROMPT
from tests.causal.test_circuit import TRUE_EDGES


def _structure_of(edges):
    return {(e.source, e.target, e.kind) for e in edges}


def _structure(graph):
    return _structure_of(graph.edges)


def test_knockout_routes_are_the_true_circuit(circuit):
    model, trace, metric = circuit
    graph = routes(model, trace, metric, threshold=0.1, score="knockout")
    assert graph.score == "knockout"
    assert _structure(graph) == _structure_of(TRUE_EDGES)
    assert all(e.weight > 0.1 for e in graph.edges)  # signed shares of the metric's span
    assert all(e.heads is None for e in graph.edges if e.kind == "attention")
    proximity = routes(model, trace, metric, threshold=0.1, score="proximity")
    assert _structure(graph) < _structure(proximity)  # fewer edges, each verified


def test_attribution_routes_miss_the_saturated_key_edge(circuit):
    """The previous-token edge builds the key the induction head matches; its softmax is
    saturated, so the gradient sees nothing there although knocking it out costs 41% of the
    span. With log p (itself saturated at p = 0.99) no edge reaches 10%."""
    model, trace, metric = circuit
    with pytest.raises(EmptyRoutesError):
        routes(model, trace, metric, threshold=0.1, score="attribution")
    logit = make_metric(model, trace, kind="logit", target=ANSWER)
    graph = routes(model, trace, logit, threshold=0.1, score="attribution")
    assert (TRUE_EDGES[0].source, TRUE_EDGES[0].target, "attention") not in _structure(graph)
    assert set(_structure(graph)) >= set(_structure_of(TRUE_EDGES[1:]))
    assert graph.score == "attribution"
    again = RouteGraph.from_json(graph.dumps())
    assert again == graph and again.score == "attribution"


def test_attribution_of_every_edge_matches_the_route_edges(circuit):
    """The all-edges attribution equals edge by edge the per-edge attribution scores."""
    from lmtt.causal.edges import attribution_scores
    from lmtt.flow.graph import routes as proximity_routes

    model, trace, metric = circuit
    scores = attribution_all(model, trace, metric)
    graph = proximity_routes(trace, threshold=0.04)
    _, per_edge = attribution_scores(model, trace, graph.edges, metric)
    for e, want in zip(graph.edges, per_edge.tolist(), strict=True):
        t = e.target
        if e.kind == "attention":
            got = float(scores.attention[t.layer, :, t.pos, e.source.pos].sum())
        elif e.kind == "mlp":
            block = e.source if e.source.kind == "mlp" else t
            got = float(scores.mlp[block.layer, block.pos])
        elif t.kind == "attn_out":
            got = float(scores.skip_mid[t.layer, t.pos])
        else:
            got = float(scores.skip_post[t.layer, t.pos])
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6), e.id


def test_contrastive_routes_carry_signs(circuit):
    """With the foil the current token (A, which its own embedding promotes), the routes of
    B over A hold edges for B (positive) and the residual path of A against it (negative)."""
    model, trace, _ = circuit
    metric = make_metric(model, trace, target=ANSWER, foil=INDUCTION_PROMPT[-1])
    graph = routes(model, trace, metric, threshold=0.05, score="knockout")
    signs = {e.weight > 0 for e in graph.edges}
    assert signs == {True, False}
    with pytest.raises(InterventionError, match="Unknown score"):
        routes(model, trace, metric, score="magic")


def test_verified_routes_are_the_proximity_routes_without_the_unread_edges(circuit):
    """Proximity keeps the previous-token write into the last position (that nobody reads
    there) and the last position's residual into the induction block (read as the query, not
    through the skip); verification drops both and keeps the true circuit."""
    model, trace, metric = circuit
    graph = routes(model, trace, metric, threshold=0.1, score="verified")
    assert _structure(graph) == _structure_of(TRUE_EDGES)
    assert graph.score == "verified" and graph.threshold == 0.1


def test_route_graphs_measure_once_and_nest(circuit):
    model, trace, metric = circuit
    for score in ("proximity", "attribution", "knockout", "verified"):
        low, mid, high = route_graphs(model, trace, metric, [0.02, 0.1, 0.99], score)
        assert _structure(high) <= _structure(mid) <= _structure(low), score
        assert [g.threshold for g in (low, mid, high)] == [0.02, 0.1, 0.99]


def test_the_cli_offers_every_score():
    from lmtt.causal.scored import SCORES
    from lmtt.cli.common import SCORES as CLI_SCORES

    assert CLI_SCORES == SCORES


def test_knockout_routes_at_a_threshold_do_not_depend_on_the_others():
    from lmtt.models import load_model
    from lmtt.models.catalog import load_model_catalog
    from lmtt.models.trace import run_trace

    catalog = load_model_catalog()
    model = load_model(catalog.get(catalog.default).resolved_source(), "cpu")
    trace = run_trace(model, "First Citizen: Before we proceed any further, hear me speak.")
    metric = make_metric(model, trace)
    alone = route_graphs(model, trace, metric, [0.04], "knockout")[0]
    swept = route_graphs(model, trace, metric, [0.01, 0.04], "knockout")[1]
    assert _structure(swept) == _structure(alone)  # weights equal up to batching's rounding
    weights = {(e.source, e.target, e.kind): e.weight for e in alone.edges}
    assert all(e.weight == pytest.approx(weights[(e.source, e.target, e.kind)], abs=1e-4)
               for e in swept.edges)  # fmt: skip


def test_a_sweep_too_large_is_refused_in_one_line():
    from lmtt.causal.scored import check_removals

    check_removals(2048, 0.01)
    with pytest.raises(InterventionError, match="raise the threshold"):
        check_removals(2049, 0.001)


def test_causal_scores_of_a_long_prompt_are_refused_in_one_line(circuit, monkeypatch):
    from lmtt.causal import metric as M
    from lmtt.causal import scored
    from lmtt.causal.edges import verify_edges
    from lmtt.causal.faithfulness import faithfulness
    from lmtt.causal.patching import patching_effects

    model, trace, metric = circuit
    graph = scored.route_graphs(model, trace, metric, [0.04], "proximity")[0]
    monkeypatch.setattr(M, "MAX_CAUSAL_TOKENS", 4)
    for score in ("attribution", "knockout", "verified"):
        with pytest.raises(InterventionError, match="proximity or read routes for long prompts"):
            scored.route_graphs(model, trace, metric, [0.04], score)
    for work in (lambda: verify_edges(model, trace, graph, metric),
                 lambda: faithfulness(model, trace, [graph], metric),
                 lambda: patching_effects(model, trace, "x y z w v u", metric)):  # fmt: skip
        with pytest.raises(InterventionError, match="at most 4 tokens"):
            work()
    assert scored.route_graphs(model, trace, metric, [0.04], "proximity")[0].edges


def test_shares_keep_their_meaning_when_the_span_is_negative(circuit):
    """For an unlikely token, removing every edge raises log p (a negative span); a positive
    share still means the edge works for the metric: removing it lowers the metric."""
    from lmtt.causal.edges import knockout_effects

    model, trace, _ = circuit
    unlikely = int(trace.logits[-1].argmin())
    metric = make_metric(model, trace, target=unlikely)
    graph = routes(model, trace, metric, threshold=0.05, score="knockout")
    drops = knockout_effects(model, trace, graph.edges, metric)  # clean - removed
    assert all((e.weight > 0) == (float(d) > 0) for e, d in zip(graph.edges, drops, strict=True))
