"""Exact decomposition of each block's write into the residual stream (DESIGN.md §1).

Attention: ``mid[l,i] - x[l,i] = sum_h sum_j A[l,h,i,j] * u[l,h,j] + bias_attn[l]`` with
``u[l,h,j] = (v[l,j,h] - b_V[l,h]) @ W_O[l,h]``. MLP: ``out[l,i] - mid[l,i] =
sum_n a[l,i,n] * W_out[l,n] + b_out[l]``. The conservation helpers return the largest relative
error of these identities, so tests (and users) can check them on any model.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int

from lmtt.models.trace import Trace
from lmtt.models.weights import repeat_kv

Positions = slice | torch.Tensor | list[int] | int


def position_index(positions: Positions | None, n: int) -> Int[torch.Tensor, " P"]:
    """Positions (slice, list, tensor or int) as a 1-D LongTensor of indices < n."""
    if positions is None:
        return torch.arange(n)
    if isinstance(positions, slice):
        return torch.arange(n)[positions]
    idx = torch.as_tensor(positions, dtype=torch.long).reshape(-1)
    return torch.where(idx < 0, idx + n, idx)


def value_outputs(trace: Trace, layer: int) -> Float[torch.Tensor, "H T d"]:
    """u[h, j]: what head h writes if it attends only to token j (no value bias)."""
    w = trace.weights
    v = repeat_kv(trace.values(layer), trace.n_heads, dim=1)  # [T, H, d_head]
    v = v - w.b_V[layer]  # value bias folded out: it is in bias_attn
    return torch.einsum("thd,hdm->htm", v, w.W_O[layer])


def attention_bias(trace: Trace, layer: int) -> Float[torch.Tensor, " d"]:
    """bias_attn[l] = b_V @ W_O + b_O: the unattributed part of the attention write."""
    w = trace.weights
    return torch.einsum("hd,hdm->m", w.b_V[layer], w.W_O[layer]) + w.b_O[layer]


def attention_parts(
    trace: Trace, layer: int, queries: Positions | None = None, u: torch.Tensor | None = None
) -> Float[torch.Tensor, "Q T H d"]:
    """z[i, j, h] = A[h, i, j] * u[h, j] for the query positions ``queries``.

    This is the per-source-token, per-head write. Memory is Q*T*H*d floats: chunk ``queries``.
    """
    u = value_outputs(trace, layer) if u is None else u  # [H, T, d]
    q = position_index(queries, trace.n_tokens)
    A = trace.pattern(layer)[:, q, :]  # [H, Q, T]
    return torch.einsum("hqt,htm->qthm", A, u)


def head_outputs(
    trace: Trace, layer: int, positions: Positions | None = None
) -> Float[torch.Tensor, "P H d"]:
    """Per-head block output sum_j A[h,i,j] u[h,j] at the given positions."""
    q = position_index(positions, trace.n_tokens)
    A = trace.pattern(layer)[:, q, :]  # [H, P, T]
    return torch.einsum("hpt,htm->phm", A, value_outputs(trace, layer))


def attention_output(trace: Trace, layer: int) -> Float[torch.Tensor, "T d"]:
    """The attention block's whole write, rebuilt from its parts."""
    return head_outputs(trace, layer).sum(dim=1) + attention_bias(trace, layer)


def neuron_outputs(
    trace: Trace, layer: int, positions: Positions | None = None
) -> Float[torch.Tensor, "P d_mlp d"]:
    """Per-neuron MLP write a[i, n] * W_out[n] at the given positions."""
    q = position_index(positions, trace.n_tokens)
    a = trace.mlp_post(layer)[q]  # [P, d_mlp]
    return a[:, :, None] * trace.weights.W_out[layer][None]


def mlp_output(trace: Trace, layer: int) -> Float[torch.Tensor, "T d"]:
    """The MLP block's whole write, rebuilt from its neurons."""
    w = trace.weights
    return trace.mlp_post(layer) @ w.W_out[layer] + w.b_out[layer]


def _relative_error(rebuilt: torch.Tensor, actual: torch.Tensor) -> float:
    scale = actual.abs().max().clamp_min(1e-12)
    return float((rebuilt - actual).abs().max() / scale)


def attention_conservation_error(trace: Trace, layer: int) -> float:
    """max |sum_h sum_j A*u + bias_attn - (mid - x)| / max |mid - x| (invariant 1)."""
    actual = trace.resid_mid(layer) - trace.resid_pre(layer)
    return _relative_error(attention_output(trace, layer), actual)


def mlp_conservation_error(trace: Trace, layer: int) -> float:
    """max |sum_n a*W_out + b_out - (out - mid)| / max |out - mid| (invariant 1)."""
    actual = trace.resid_post(layer) - trace.resid_mid(layer)
    return _relative_error(mlp_output(trace, layer), actual)
