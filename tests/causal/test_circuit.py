"""Known answers on a GPT-2 built by hand (lmtt.testing.circuits): a previous-token head
feeding an induction head, and a head whose write nothing reads."""

import pytest

from lmtt.causal.edges import verify_edges
from lmtt.causal.faithfulness import faithfulness
from lmtt.flow.graph import Edge, RouteGraph, attn_out, embed, resid, routes
from lmtt.testing.circuits import ANSWER, INDUCTION_PROMPT

LAST = len(INDUCTION_PROMPT) - 1  # the second A
COPY_SOURCE = 2  # B, after the first A

# The circuit, as route edges: B's token reaches position 2's residual, the previous-token
# head writes A there (the key the induction head matches), the query is A at the last
# position, and the induction head copies B into the last residual.
TRUE_EDGES = [
    Edge(embed(1), attn_out(0, 2), "attention", 1.0),  # L0H0 writes "previous token A"
    Edge(embed(2), attn_out(0, 2), "residual", 1.0),  # B itself
    Edge(attn_out(0, 2), resid(0, 2), "residual", 1.0),
    Edge(embed(LAST), attn_out(0, LAST), "residual", 1.0),  # the query: A
    Edge(attn_out(0, LAST), resid(0, LAST), "residual", 1.0),
    Edge(resid(0, COPY_SOURCE), attn_out(1, LAST), "attention", 1.0),  # induction: copy B
    Edge(attn_out(1, LAST), resid(1, LAST), "residual", 1.0),
]


def _graph(trace, edges) -> RouteGraph:
    nodes = sorted({n for e in edges for n in (e.source, e.target)}, key=lambda n: n.sort_key())
    return RouteGraph("circuit", trace.token_strs, (LAST,), 0.0, None, tuple(nodes), tuple(edges))


def test_the_circuit_predicts_the_copy(circuit):
    model, trace, metric = circuit
    assert int(trace.logits[LAST].argmax()) == ANSWER
    assert float(trace.pattern(1)[0, LAST, COPY_SOURCE]) > 0.99  # the induction head
    assert float(trace.pattern(0)[0, COPY_SOURCE, COPY_SOURCE - 1]) > 0.99  # previous token


def test_every_true_edge_has_a_large_effect(circuit):
    model, trace, metric = circuit
    effects = verify_edges(model, trace, _graph(trace, TRUE_EDGES), metric).effect
    assert (effects > 1.0).all(), effects  # each costs more than 1 nat of log p(B)


def test_the_unread_write_has_no_effect_though_the_routes_keep_it(circuit):
    """The routes keep edges into the last position's layer-0 block that carry only the dead
    head's write (and a previous-token write nobody reads there): verification finds them
    without effect."""
    model, trace, metric = circuit
    graph = routes(trace, threshold=0.04)
    unread = [e for e in graph.edges if e.kind == "attention" and e.target == attn_out(0, LAST)]
    assert len(unread) >= 4 and min(e.weight for e in unread) > 0.04
    v = verify_edges(model, trace, graph, metric)
    by_id = {e.id: float(x) for e, x in zip(v.edges, v.effect, strict=True)}
    assert all(abs(by_id[e.id]) < 1e-3 for e in unread), [by_id[e.id] for e in unread]
    true_ids = {e.id for e in TRUE_EDGES}
    assert true_ids <= set(by_id) and all(by_id[i] > 1.0 for i in true_ids)


def test_completeness_of_the_circuit_and_of_the_rest(circuit):
    model, trace, metric = circuit
    f = faithfulness(model, trace, [_graph(trace, TRUE_EDGES)], metric)
    assert f.completeness[0] == pytest.approx(1.0, abs=0.02)  # the circuit alone suffices
    assert f.complement[0] == pytest.approx(1.0, abs=0.02)  # without it, all is lost
    assert f.baseline < f.clean - 5  # the fully ablated baseline is near uniform


def test_attribution_misses_the_saturated_key_path(circuit):
    """A known limit of first-order estimates, shown by the hard-attention key path: the
    previous-token edge moves the induction head's attention from 0 to 1, but the gradient
    through a saturated softmax is ~0; the knockout measures it."""
    model, trace, metric = circuit
    edge = TRUE_EDGES[0]
    v = verify_edges(model, trace, _graph(trace, [edge]), metric)
    assert float(v.effect[0]) > 1.0 and abs(float(v.attribution[0])) < 1e-3


def test_effects_within_the_circuit(circuit):
    """With only the circuit kept, every true edge is necessary: removing any one of them too
    loses most of the metric's span."""
    from lmtt.causal.faithfulness import effects_within

    model, trace, metric = circuit
    completeness, within = effects_within(model, trace, _graph(trace, TRUE_EDGES), metric)
    assert completeness == pytest.approx(1.0, abs=0.02)
    assert set(within) == set(TRUE_EDGES)
    assert all(v > 0.3 for v in within.values()), within
