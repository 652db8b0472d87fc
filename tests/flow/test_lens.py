"""DESIGN.md §4 component views."""

import pytest
import torch

from lmtt.errors import OutOfRangeError
from lmtt.flow import contributions as C
from lmtt.flow import decompose
from lmtt.flow.graph import Node, routes
from lmtt.flow.lens import component_logits, head_tokens, lens_logits, node_lens, top_neurons
from lmtt.models.trace import run_trace


@pytest.fixture(scope="module")
def trace(tiny_model):
    return run_trace(tiny_model, "When Mary and John went to the store, John gave")


def test_component_logits_add_up_to_the_logits(trace):
    """The direct effects of all parts of the final residual (every block's write plus the
    embedding) through the final norm's scale add up to the logits minus the norm's bias."""
    L, pos = trace.n_layers, trace.n_tokens - 1
    parts = [trace.resid_pre(0)[pos]]
    for layer in range(L):
        parts.append(trace.resid_mid(layer)[pos] - trace.resid_pre(layer)[pos])
        parts.append(trace.resid_post(layer)[pos] - trace.resid_mid(layer)[pos])
    total = component_logits(trace, torch.stack(parts), pos).sum(0)
    w = trace.weights
    expected = trace.logits[pos] - w.ln_final_b @ w.W_U - w.b_U
    torch.testing.assert_close(total, expected, atol=1e-3, rtol=1e-4)


def test_head_tokens_are_the_heads_direct_effect(trace):
    pos, layer = trace.n_tokens - 1, 1
    result = head_tokens(trace, layer, 2, pos, k=5)
    effect = component_logits(trace, decompose.head_outputs(trace, layer, [pos])[0, 2], pos)
    assert [s.token_id for s in result.top] == torch.topk(effect, 5).indices.tolist()
    assert [s.token_id for s in result.bottom] == torch.topk(-effect, 5).indices.tolist()
    with pytest.raises(OutOfRangeError, match="Head 99 is out of range: 0..3"):
        head_tokens(trace, layer, 99, pos)


def test_top_neurons_are_ordered_by_contribution(trace):
    pos, layer = 4, 0
    views = top_neurons(trace, layer, pos, n=5, k=3)
    nc = C.neuron_contributions(trace, layer, [pos])
    assert [v.neuron for v in views] == torch.topk(nc.neurons[0], 5).indices.tolist()
    assert all(a.contribution >= b.contribution for a, b in zip(views, views[1:], strict=False))
    assert views[0].activation == pytest.approx(float(trace.mlp_post(layer)[pos, views[0].neuron]))
    assert len(views[0].tokens.top) == 3


def test_node_lens_of_route_nodes(trace):
    graph = routes(trace, threshold=0.05)
    for node in graph.nodes:
        result = node_lens(trace, node, k=3)
        assert len(result.top) == 3
    last = Node("resid", trace.n_layers - 1, trace.n_tokens - 1)
    top = node_lens(trace, last, k=1).top[0]
    assert top.token_id == int(trace.logits[-1].argmax())
    embed = node_lens(trace, Node("embed", None, 0), k=1).top[0]
    assert embed.token_id == int(lens_logits(trace, trace.resid_pre(0)[0]).argmax())
