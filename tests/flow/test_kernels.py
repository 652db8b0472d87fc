"""The proximity kernels: the tiled numba kernel changes no bit of the one-query-at-a-time
kernel it replaced (kept here as the reference), and the torch kernel (for the model's device)
equals it to float rounding."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmtt.flow.contributions import EPS, proximity, raw_proximities, torch_proximities
from lmtt.jit import njit, prange


@njit(parallel=True, fastmath={"reassoc", "nsz", "contract"})
def _one_query_at_a_time(y, scales, vecs, vec_norms, limits, eps, out):  # pragma: no cover
    """The kernel before tiling (lmtt 0.x): out[b,g,k], scales [B, G, K]."""
    B, d = y.shape
    G, K = vec_norms.shape
    for bg in prange(B * G):
        b = bg // G
        g = bg % G
        for k in range(limits[b] + 1):
            s = scales[b, g, k]
            if abs(s) * vec_norms[g, k] <= eps:
                out[b, g, k] = eps
                continue
            raw = np.float32(0.0)
            for e in range(d):
                raw += abs(y[b, e]) - abs(y[b, e] - s * vecs[g, k, e])
            out[b, g, k] = raw if raw > eps else eps


def _case(B, G, K, d, seed, sparse):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(B, d, generator=gen)
    scales = torch.rand(B, G, K, generator=gen)
    if sparse:  # many parts under the eps bound, as in a peaked pattern
        scales = scales * (torch.rand(B, G, K, generator=gen) > 0.5) * 1e-3 ** torch.rand(1)
    vecs = torch.randn(G, K, d, generator=gen)
    limits = torch.randint(0, K, (B,), generator=gen)
    return y, scales, vecs, limits


def _reference(y, scales, vecs, limits):
    out = np.zeros(tuple(scales.shape), dtype=np.float32)
    norms = vecs.abs().sum(-1).numpy()
    _one_query_at_a_time(y.numpy(), scales.numpy(), vecs.numpy(), norms, limits.numpy(),
                         np.float32(EPS), out)  # fmt: skip
    return torch.from_numpy(out)


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 40),
    G=st.integers(1, 5),
    K=st.integers(1, 40),
    d=st.sampled_from([1, 7, 64, 129]),
    seed=st.integers(0, 99),
    sparse=st.booleans(),
)
def test_tiled_kernel_is_bit_identical_to_one_query_at_a_time(B, G, K, d, seed, sparse):
    y, scales, vecs, limits = _case(B, G, K, d, seed, sparse)
    want = _reference(y, scales, vecs, limits)
    got = proximity(y, scales, vecs, limits)
    assert torch.equal(got, want)
    columns = raw_proximities(y, scales.transpose(0, 1), vecs, limits, extra=2)
    assert torch.equal(columns[:, : K * G].reshape(B, K, G).transpose(1, 2), want)
    assert not columns[:, K * G :].any()


@pytest.mark.parametrize("shape", [(3, 2, 5, 8), (33, 4, 70, 96), (17, 12, 64, 768)])
def test_torch_kernel_equals_the_numba_kernel(shape):
    y, scales, vecs, limits = _case(*shape, seed=1, sparse=False)
    want = _reference(y, scales, vecs, limits)
    got = torch_proximities(y, scales.transpose(0, 1), vecs, limits, memory_budget_mb=0.5)
    scale = want.abs().max()
    torch.testing.assert_close(got, want, atol=1e-5 * scale, rtol=1e-5)


def test_contributions_on_an_accelerator_equal_the_cpu_kernel(gpt2_model, monkeypatch):
    """The device path (the torch kernel; forced here, as no GPU is at hand) gives the CPU
    kernel's contributions."""
    from lmtt.flow import contributions as C
    from lmtt.models.trace import run_trace

    trace = run_trace(gpt2_model, "When Mary and John went to the store, John gave a drink to")
    want = C.attention_contributions(trace, 1, [3, 9, -1])
    monkeypatch.setattr(C, "_on_accelerator", lambda device: True)
    got = C.attention_contributions(trace, 1, [3, 9, -1], device="cpu")
    torch.testing.assert_close(got.heads, want.heads, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.residual, want.residual, atol=1e-5, rtol=1e-5)


def test_the_kernel_follows_the_models_device():
    """The CLI and the app run the proximity kernel where the model is (lmtt.flow.graph)."""
    from lmtt.flow.graph import kernel_device

    assert kernel_device("cpu") is None  # the numba kernel
    assert kernel_device("cuda") == "cuda" and kernel_device("mps") == "mps"
    assert kernel_device("cuda:1") == "cuda:1"


@pytest.mark.parametrize("sparse", [False, True])
def test_offsets_point_each_row_at_its_own_parts(sparse):
    """Row b of a stacked trace reads parts offsets[b] ... offsets[b] + K of ``vecs``: the
    same bits as that row alone against that slice (numba), and close to it (torch)."""
    B, G, K, d, N = 19, 3, 12, 33, 50
    y, scales, _, limits = _case(B, G, K, d, seed=3, sparse=sparse)
    gen = torch.Generator().manual_seed(4)
    vecs = torch.randn(G, N, d, generator=gen)
    offsets = torch.randint(0, N - K + 1, (B,), generator=gen)
    got = raw_proximities(y, scales.transpose(0, 1), vecs, limits, offsets=offsets)
    for b in range(B):
        o = int(offsets[b])
        alone = raw_proximities(y[b : b + 1], scales[b : b + 1].transpose(0, 1),
                                vecs[:, o : o + K], limits[b : b + 1])  # fmt: skip
        assert torch.equal(got[b : b + 1], alone), b
    on_torch = torch_proximities(y, scales.transpose(0, 1), vecs, limits, offsets=offsets,
                                 memory_budget_mb=0.05)  # fmt: skip
    want = got.reshape(B, K, G).transpose(1, 2)
    torch.testing.assert_close(on_torch, want, atol=1e-5 * want.abs().max(), rtol=1e-5)
