"""Read weights (lmtt.flow.read): each part weighted by the share of it its reader reads.

A known circuit (lmtt.testing.circuits) has a previous-token head whose write only the
induction head's *key* reads and a dead head whose write nothing reads: proximity keeps both
on the value path, read weights drop them and keep the induction head's copy of the answer.
"""

import pytest
import torch

from lmtt.flow import decompose
from lmtt.flow.graph import build_graph, routes
from lmtt.flow.read import Reading, final_direction, head_read_basis
from lmtt.models.trace import run_trace

PROMPT = "When Mary and John went to the store, John gave a drink to"


def _heads_on_value_path(graph) -> set[tuple[int, int]]:
    return {(e.target.layer, e.top_head) for e in graph.edges if e.kind == "attention"}


def test_read_weights_drop_writes_no_reader_reads(circuit):
    _, trace, _ = circuit
    proximity = routes(trace, threshold=0.04)
    read = routes(trace, threshold=0.04, reading=Reading())
    # proximity credits the previous-token head (L0 H0) and the dead head (L0 H1)
    assert {(0, 0), (0, 1)} <= _heads_on_value_path(proximity)
    assert _heads_on_value_path(read) == {(1, 0)}  # only the induction head's copy
    copy = read.find("resid:0:2>attn_out:1:5>attention")
    assert copy is not None and copy.weight > 0.9  # the answer B, read from position 2
    assert read.score == "read" and not read.signed and proximity.score == "proximity"


def test_final_direction_is_the_gradient_of_the_log_probability(tiny_model):
    """Against autograd through the final norm with its scale frozen (an independent
    reference): the direction is parallel to d log p(t) / d x."""
    trace = run_trace(tiny_model, PROMPT)
    w, last = trace.weights, trace.n_tokens - 1
    x = trace.resid_post(trace.n_layers - 1)[last].clone().requires_grad_(True)
    s, g, b = (t.clone() for t in (trace.final_scale()[last], w.ln_final_w, w.ln_final_b))
    logits = (decompose.centre(trace, x) * g / s + b) @ w.W_U.clone() + w.b_U.clone()
    token = int(logits.argmax())
    logits.log_softmax(-1)[token].backward()
    d = final_direction(trace, last, Reading())
    assert torch.nn.functional.cosine_similarity(d, x.grad, dim=0) > 1 - 1e-5
    foil = final_direction(trace, last, Reading(token=3, foil=5))
    want = decompose.centre(trace, w.ln_final_w * (w.W_U[:, 3] - w.W_U[:, 5]))
    torch.testing.assert_close(foil, want)


def test_head_basis_spans_exactly_what_the_head_reads(tiny_model):
    """The residual less its projection on the basis makes no value output; the projection
    makes all of it."""
    trace = run_trace(tiny_model, PROMPT)
    vm = trace.weights.value_map(1)
    for head in range(trace.n_heads):
        Q = head_read_basis(trace, 1, head)
        assert Q.shape[1] <= trace.dims.d_head
        torch.testing.assert_close(Q.T @ Q, torch.eye(Q.shape[1]), atol=1e-5, rtol=0)
        x = torch.randn(5, trace.dims.d_model)

        def value_write(v, head=head):
            v = decompose.centre(trace, v) * vm.norm_w if vm.norm_w is not None else v
            return v @ vm.W_V[head] @ trace.weights.W_O[1, head]

        inside = x @ Q @ Q.T
        scale = value_write(x).abs().max()
        assert value_write(x - inside).abs().max() < 1e-4 * scale
        torch.testing.assert_close(value_write(inside), value_write(x), atol=1e-4 * scale, rtol=0)


@pytest.mark.parametrize("threshold", [0.01, 0.04, 0.15])
def test_read_routes_are_shares_and_equal_the_full_graph_pruned(tiny_model, threshold):
    trace = run_trace(tiny_model, PROMPT)
    targets = [trace.n_tokens - 1, 4]
    read = routes(trace, targets, threshold, reading=Reading())
    assert read == build_graph(trace).prune(targets, threshold, Reading())
    into: dict = {}
    for e in read.edges:
        assert e.weight > threshold
        if e.kind == "attention":
            assert abs(sum(e.heads) - e.weight) < 1e-5
        if not (e.kind == "mlp" and e.source.kind == "mlp"):  # the MLP's second half repeats
            into[e.target] = into.get(e.target, 0.0) + e.weight
    assert max(into.values()) <= 1 + 1e-5


def test_the_read_score_goes_through_the_metric(tiny_model):
    from lmtt.causal.metric import make_metric
    from lmtt.causal.scored import route_graphs
    from lmtt.causal.scored import routes as scored_routes

    trace = run_trace(tiny_model, PROMPT)
    metric = make_metric(tiny_model, trace, foil=7)
    graph = scored_routes(tiny_model, trace, metric, 0.04, "read")
    assert graph == route_graphs(tiny_model, trace, metric, [0.04], "read")[0]
    reading = Reading(token=metric.target, foil=7, logprob=False)
    assert graph == routes(trace, metric.position, 0.04, reading=reading)


def test_readers_pass_down_the_edges_by_their_rules(tiny_model):
    """Hand-made edges into layer 1: an attention edge is read by its heads carrying 10% of
    it; a residual edge passes its target's reader down, unless an MLP reads that target; an
    MLP reads everything; several readers merge."""
    from lmtt.flow.graph import Edge, attn_out, mlp_block, resid
    from lmtt.flow.read import ReadWalk

    trace = run_trace(tiny_model, PROMPT)
    final = frozenset({("final", 5)})
    walk = ReadWalk(trace, Reading(), {5: final, 6: final})
    heads = (0.9, 0.05, 0.05, 0.0)
    edges = [
        Edge(resid(0, 2), attn_out(1, 5), "attention", 1.0, heads),
        Edge(resid(0, 3), attn_out(1, 5), "attention", 0.5, (0.0, 0.0, 0.5, 0.0)),
        Edge(resid(0, 3), attn_out(1, 6), "attention", 0.5, (0.25, 0.25, 0.0, 0.0)),
        Edge(resid(0, 5), attn_out(1, 5), "residual", 0.4),  # attn_out(1, 5) read by its MLP
        Edge(attn_out(1, 5), mlp_block(1, 5), "mlp", 0.3),
        Edge(resid(0, 6), attn_out(1, 6), "residual", 0.4),  # passes resid(1, 6)'s reader
        Edge(resid(0, 4), attn_out(1, 6), "attention", 0.2, (0.2, 0.0, 0.0, 0.0)),
        Edge(resid(0, 4), attn_out(1, 4), "residual", 0.9),  # a target nobody reached
    ]
    below = walk.below(1, edges).readers
    assert below[2] == {("head", 1, 0)}  # heads under 10% of the edge do not read it
    assert below[3] == {("head", 1, 2), ("head", 1, 0), ("head", 1, 1)}  # merged
    assert below[5] is None  # the MLP reads everything
    assert below[6] == final
    assert below[4] is None  # one reader reads everything: so does the node
