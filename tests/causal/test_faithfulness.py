"""Faithfulness of a graph, metrics, and attribution scores as the derivative of the removal."""

import pytest
import torch

from lmtt.causal.attention_removal import masked_attention
from lmtt.causal.edges import attribution_scores, edge_intervention, verify_edges
from lmtt.causal.faithfulness import EdgeMask, _area, faithfulness, masked_metric
from lmtt.causal.metric import Metric, make_metric
from lmtt.causal.removal import skip_edits
from lmtt.errors import InterventionError
from lmtt.flow.graph import build_graph, routes
from lmtt.models import load_model
from lmtt.models.intervene import HookEdit, run_edited
from lmtt.models.trace import run_trace
from lmtt.testing import make_tiny_model

PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module", params=["gpt2", "llama", "gpt_neox"])
def traced(request, tmp_path_factory):
    folder = make_tiny_model(tmp_path_factory.mktemp(request.param) / "m", request.param,
                             init_std=0.1)  # fmt: skip
    model = load_model(str(folder), device="cpu")
    trace = run_trace(model, PROMPT)
    return model, trace, make_metric(model, trace, kind="logit")


def test_keeping_every_edge_is_the_clean_run_and_none_is_constant(traced):
    model, trace, metric = traced
    L, T = trace.n_layers, trace.n_tokens
    full, empty = masked_metric(model, trace, [EdgeMask.full(L, T), EdgeMask.full(L, T, False)],
                                Metric("logit", T - 1, 5))  # fmt: skip
    assert float(full) == pytest.approx(float(trace.logits[-1, 5]), abs=1e-4)
    tokens = trace.tokens.flip(0)  # another prompt: with every edge removed, nothing is read
    other = run_trace(model, tokens)
    again = masked_metric(model, other, [EdgeMask.full(L, T, False)], Metric("logit", T - 1, 5))
    assert float(empty) == pytest.approx(float(again), abs=1e-5)


def test_the_graph_mask_holds_exactly_its_edges(traced):
    model, trace, metric = traced
    graph = routes(trace, threshold=0.05)
    m = EdgeMask.of_graph(graph, trace.n_layers)
    kinds = {"attention": 0, "mlp": 0, "residual": 0}
    for e in graph.edges:
        kinds[e.kind] += 1
    n_mlp_blocks = kinds["mlp"] // 2  # two edges through each MLP block
    total = int(m.attention.sum() + m.mlp.sum() + m.skip_mid.sum() + m.skip_post.sum())
    assert total == kinds["attention"] + n_mlp_blocks + kinds["residual"]
    assert torch.equal(m.inverted().inverted().attention, m.attention)


def test_completeness_of_everything_is_one(traced):
    model, trace, metric = traced
    full = build_graph(trace)
    graphs = [full.prune(threshold=t) for t in (0.0, 0.02, 0.1)]
    f = faithfulness(model, trace, graphs, metric)
    assert f.completeness[0] == pytest.approx(1.0, abs=1e-3)  # threshold 0 keeps every edge
    assert f.complement[0] == pytest.approx(1.0, abs=1e-3)
    assert f.n_edges[0] > f.n_edges[1] > f.n_edges[2]
    js = f.to_json(trace.vocab)
    assert js["completeness_area"] == pytest.approx(_area(f.thresholds, f.completeness))


def test_area_is_the_trapezoid_mean():
    assert _area([0.0, 0.5, 1.0], [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert _area([0.1, 0.3], [1.0, 1.0]) == pytest.approx(1.0)
    assert _area([0.3, 0.1], [0.0, 1.0]) == pytest.approx(0.5)  # any order


def _finite_difference(model, trace, metric, edits, eps):
    logits, _ = run_edited(model, trace.tokens[None], edits)
    return (float(metric(trace.logits[None])) - float(metric(logits))) / eps


def test_attribution_is_the_derivative_of_the_removal(traced):
    """Removing a fraction eps of each edge's part changes the metric by eps x its
    attribution score (to first order)."""
    model, trace, metric = traced
    graph = routes(trace, threshold=0.005)
    _, scores = attribution_scores(model, trace, graph.edges, metric)
    eps, T = 1e-3, trace.n_tokens
    checked = set()
    for edge, score in zip(graph.edges, scores.tolist(), strict=True):
        t = edge_intervention(edge).target
        kind = type(t).__name__
        if kind in checked:
            continue
        checked.add(kind)
        if kind == "AttentionEdge":
            keep = torch.ones(1, T, T)
            keep[0, t.query, t.key] = 1 - eps
            edits = [masked_attention(model, t.layer, keep)]
        elif kind == "MlpWrite":
            edits = [HookEdit("mlp_write", t.layer, _scale_at(t.pos, 1 - eps))]
        else:
            keep = torch.ones(1, T)
            keep[0, t.pos] = 1 - eps
            mid, post = (keep, None) if t.into == "mid" else (None, keep)
            edits = skip_edits(model, t.layer, mid, post)
        fd = _finite_difference(model, trace, metric, edits, eps)
        assert fd == pytest.approx(score, rel=0.05, abs=1e-3), (kind, fd, score)
    assert {"AttentionEdge", "MlpWrite", "Skip"} <= checked


def _scale_at(pos, factor):
    def apply(t, seen):
        out = t.clone()
        out[:, pos] *= factor
        return out

    return apply


def test_verification_rows_and_metric_errors(traced):
    model, trace, metric = traced
    graph = routes(trace, threshold=0.1)
    v = verify_edges(model, trace, graph, metric, attribution=False)
    rows = v.rows()
    assert len(rows) == len(graph.edges) and "attribution" not in rows[0]
    two = [e for e in graph.edges if e.kind == "mlp"]
    if two:  # both edges through one MLP carry one part: the same effect
        by_id = {r["edge"]: r["effect"] for r in rows}
        assert by_id[two[0].id] == by_id[two[1].id]
    with pytest.raises(InterventionError, match="needs a foil"):
        make_metric(model, trace, kind="contrast")
    with pytest.raises(InterventionError, match="is the target"):
        make_metric(model, trace, target=5, foil=5)
    c = make_metric(model, trace, target=5, foil=6)
    assert float(c(trace.logits[None])) == pytest.approx(
        float(trace.logits[-1, 5] - trace.logits[-1, 6])
    )
    with pytest.raises(InterventionError, match="tokens"):
        make_metric(model, trace, target="several words here")
