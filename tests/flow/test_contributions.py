"""DESIGN.md §2 contributions: reference, hand-worked cases, invariants 2 and 5."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmtt.flow import contributions as C
from lmtt.flow import decompose
from lmtt.models.trace import run_trace

EPS = C.EPS


def reference_contributions(y, parts, threshold=None):
    """Section 2 literally, float64: y [d] is the whole, parts [K, d] the parts."""
    y, parts = y.double(), parts.double()
    raw = (y.abs().sum() - (y[None] - parts).abs().sum(-1)).clamp_min(EPS)
    c = raw / raw.sum()
    if threshold is not None:
        c = torch.where(c > threshold, c, torch.zeros_like(c))
        c = c / c.sum()
    return c


def _fast(y, parts, threshold=None):
    raw = C.proximity(y[None], torch.ones(1, 1, len(parts)), parts[None])[0, 0]
    return C.normalize(raw, threshold)


def test_two_parts_by_hand():
    # y = [2, 1]; ||y|| = 3. z1 = [3, 0]: ||y - z1|| = 2, raw 1. z2 = [-1, 1]: ||y - z2|| = 3,
    # raw max(eps, 0) = eps. c = [1, eps] / (1 + eps).
    c = _fast(torch.tensor([2.0, 1.0]), torch.tensor([[3.0, 0.0], [-1.0, 1.0]]))
    torch.testing.assert_close(c, torch.tensor([1 / (1 + EPS), EPS / (1 + EPS)]))


def test_three_parts_and_a_bias_by_hand():
    # parts [1,0,0], [0,2,0], [0,0,-1] plus bias [0,0,2]: y = [1,2,1], ||y|| = 4.
    # ||y - z|| = 3, 2, 5 -> raw = 1, 2, eps -> c = [1, 2, eps] / (3 + eps).
    parts = torch.tensor([[1.0, 0, 0], [0, 2.0, 0], [0, 0, -1.0]])
    y = parts.sum(0) + torch.tensor([0, 0, 2.0])
    c = _fast(y, parts)
    torch.testing.assert_close(c, torch.tensor([1, 2, EPS]) / (3 + EPS))
    # Threshold 0.4 keeps only the second part, renormalised to 1.
    torch.testing.assert_close(_fast(y, parts, 0.4), torch.tensor([0.0, 1.0, 0.0]))


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 12),
    d=st.integers(1, 40),
    seed=st.integers(0, 10_000),
    threshold=st.one_of(st.none(), st.floats(0.0, 0.99)),
    tiny=st.booleans(),
)
def test_kernel_matches_reference_and_sums_to_one(k, d, seed, threshold, tiny):
    gen = torch.Generator().manual_seed(seed)
    parts = torch.randn(k, d, generator=gen)
    if tiny:  # some parts below the eps bound, to exercise the skip
        parts[::2] *= 1e-7
    y = parts.sum(0) + 0.1 * torch.randn(d, generator=gen)
    c = _fast(y, parts, threshold)
    assert torch.all((c >= 0) & (c <= 1 + 1e-6))
    assert abs(float(c.sum()) - 1) < 1e-5
    ref = reference_contributions(y, parts, threshold if threshold is not None else None)
    if threshold is None or ref.isfinite().all():
        torch.testing.assert_close(c.double(), ref, atol=1e-5, rtol=0)


def test_attention_contributions_match_reference(tiny_model):
    trace = run_trace(tiny_model, "When Mary and John went to the store, John gave")
    for layer in range(trace.n_layers):
        parts = decompose.attention_parts(trace, layer)  # [T, T, H, d]
        ac = C.attention_contributions(trace, layer)
        for i in range(trace.n_tokens):
            whole = trace.resid_mid(layer)[i]
            mine = parts[i, : i + 1].reshape(-1, parts.shape[-1])  # (j, h) pairs, j <= i
            all_parts = torch.cat([mine, trace.resid_pre(layer)[i][None]])
            ref = reference_contributions(whole, all_parts)
            fast = torch.cat([ac.heads[i, : i + 1].reshape(-1), ac.residual[i : i + 1]])
            torch.testing.assert_close(fast.double(), ref, atol=1e-5, rtol=0)
            assert ac.heads[i, i + 1 :].abs().sum() == 0  # causal pairs are not parts


def test_mlp_and_neuron_contributions_match_reference(tiny_model):
    trace = run_trace(tiny_model, "One, two, three, four")
    for layer in range(trace.n_layers):
        mc = C.mlp_contributions(trace, layer)
        nc = C.neuron_contributions(trace, layer)
        neurons = decompose.neuron_outputs(trace, layer)  # [T, n, d]
        for i in range(trace.n_tokens):
            out, mid = trace.resid_post(layer)[i], trace.resid_mid(layer)[i]
            ref = reference_contributions(out, torch.stack([out - mid, mid]))
            torch.testing.assert_close(
                torch.stack([mc.mlp[i], mc.residual[i]]).double(), ref, atol=1e-5, rtol=0
            )
            ref = reference_contributions(out, torch.cat([neurons[i], mid[None]]))
            fast = torch.cat([nc.neurons[i], nc.residual[i : i + 1]])
            torch.testing.assert_close(fast.double(), ref, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def long_trace(gpt2_model):
    return run_trace(gpt2_model, "First Citizen: Before we proceed any further, hear me speak.")


@settings(max_examples=25, deadline=None)
@given(
    budget=st.floats(1e-4, 2.0),
    threshold=st.one_of(st.none(), st.floats(0.0, 0.5)),
    layer=st.integers(0, 2),
)
def test_chunked_equals_unchunked(long_trace, budget, threshold, layer):
    whole = C.attention_contributions(long_trace, layer, None, threshold, memory_budget_mb=1e6)
    chunked = C.attention_contributions(long_trace, layer, None, threshold, budget)
    assert torch.equal(whole.heads, chunked.heads)
    assert torch.equal(whole.residual, chunked.residual)
    total = chunked.heads.sum((1, 2)) + chunked.residual
    torch.testing.assert_close(total, torch.ones_like(total))
    assert chunked.heads.min() >= 0 and chunked.heads.max() <= 1


def test_per_head_view_sums_with_residual_to_one(long_trace):
    ac = C.attention_contributions(long_trace, 1, [-1])
    total = ac.per_head.sum() + ac.residual.sum()
    assert abs(float(total) - 1) < 1e-5
