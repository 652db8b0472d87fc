"""Key and query edges: the parts that made an attention edge's score, on the hand-built
induction circuit; schema version 2 keeps them and still reads version 1."""

import json

import pytest

from lmtt.causal.edges import edge_intervention, verify_edges
from lmtt.errors import InterventionError
from lmtt.flow.graph import RouteGraph, attn_out, embed, resid, routes
from lmtt.flow.qk_routes import value_edges, with_qk_edges


@pytest.fixture(scope="module")
def graphs(circuit):
    _, trace, _ = circuit
    graph = routes(trace, threshold=0.1)
    return graph, with_qk_edges(trace, graph, threshold=0.05)


def _by(graph, kind):
    return {(e.source, e.target): e.weight for e in graph.edges if e.kind == kind}


def test_the_induction_key_comes_from_the_previous_token_write(graphs):
    """The induction head at the last A attends to B (position 2) because B's key holds the
    previous-token write of layer 0 (L0H0 at position 2) and the query is A's embedding."""
    graph, qk = graphs
    induction = next(e for e in graph.edges if e.kind == "attention" and e.target.layer == 1)
    assert (induction.source, induction.target) == (resid(0, 2), attn_out(1, 5))
    keys, queries = _by(qk, "key"), _by(qk, "query")
    assert keys[(attn_out(0, 2), attn_out(1, 5))] == pytest.approx(induction.weight, rel=0.05)
    assert (embed(2), attn_out(1, 5)) not in keys  # B's own token: not what the key reads
    assert queries[(embed(5), attn_out(1, 5))] == pytest.approx(induction.weight, rel=0.05)
    assert value_edges(qk) == graph.edges
    assert set(graph.nodes) <= set(qk.nodes)


def test_key_and_query_edges_round_trip_and_version_1_loads(graphs):
    _, qk = graphs
    data = json.loads(qk.dumps())
    assert data["schema_version"] == 2 and {"key", "query"} <= {e["kind"] for e in data["edges"]}
    assert RouteGraph.from_json(qk.dumps()) == qk
    old = {**data, "schema_version": 1,
           "edges": [e for e in data["edges"] if e["kind"] not in ("key", "query")]}  # fmt: skip
    assert RouteGraph.from_json(old).edges == value_edges(qk)


def test_the_causal_tools_read_only_the_value_path(graphs, circuit):
    model, trace, metric = circuit
    graph, qk = graphs
    key_edge = next(e for e in qk.edges if e.kind == "key")
    with pytest.raises(InterventionError, match="not a path"):
        edge_intervention(key_edge)
    effects = verify_edges(model, trace, qk, metric)
    assert effects.edges == graph.edges


def test_an_edge_against_the_prediction_keeps_its_key_and_query_edges(graphs, circuit):
    from dataclasses import replace

    from lmtt.flow.qk_routes import qk_edges

    _, trace, _ = circuit
    graph, _ = graphs
    induction = next(e for e in graph.edges if e.kind == "attention" and e.target.layer == 1)
    heads = tuple(-h for h in induction.heads)  # a signed score's per-head weights
    against = replace(induction, weight=-induction.weight, heads=heads)
    edges = qk_edges(trace, against)
    assert edges and all(e.weight <= 0 for e in edges)
    signed = replace(graph, edges=tuple(against if e == induction else e for e in graph.edges))
    keys = _by(with_qk_edges(trace, signed, threshold=0.05), "key")
    assert keys[(attn_out(0, 2), attn_out(1, 5))] == pytest.approx(-induction.weight, rel=0.05)


def test_too_many_attention_edges_are_refused(graphs, circuit, monkeypatch):
    import lmtt.flow.qk_routes as Q
    from lmtt.errors import RouteError

    _, trace, _ = circuit
    graph, _ = graphs
    monkeypatch.setattr(Q, "MAX_ATTENTION_EDGES", 1)
    with pytest.raises(RouteError, match="raise the threshold"):
        with_qk_edges(trace, graph)
