"""Exact decomposition of each block's write into the residual stream (DESIGN.md §1, §1b).

Every block layout is affine in its parts once each norm's scale is frozen at its traced value
(docs/decomposition.md has the identities). A block's write, and for post-norm encoders the
residual too, passes through its *output map* ``P_i(v) = C(v) * g / s_i`` (``C`` centres for a
LayerNorm, ``g`` is the norm's gain, ``s_i`` its traced scale at position i; the identity for
pre-norm blocks), and the norm's bias is unattributed. So with ``u'[h,j] = C(u[h,j]) * g``
(``u[h,j] = (v[j,h] - b_V[h]) @ W_O[h]``) the head parts are ``A[h,i,j] / s_i * u'[h,j]``:

- attention (sequential): ``target = mid = residual + sum_h sum_j A/s_i u' + bias``, where the
  residual is ``x`` (``P(x)`` for post norms);
- attention (parallel): ``target = out = x + sum A/s_i u' + bias + mlp_write``;
- MLP: ``target = out = residual + sum_n a[i,n] / s_i * C(W_out[n]) * g + bias``, where the
  residual is ``mid`` (``P(mid)`` for post norms; ``out - mlp_write`` for parallel blocks).

The conservation helpers return the largest relative error of these identities.
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


def _out_norm(trace: Trace, layer: int, block: str):
    """(gain [d], bias [d], scale [T, 1]) of the norm block ``block``'s write passes through,
    or None for a pre-norm block."""
    w = trace.weights
    gain = getattr(w, f"{block}_out_w")
    if gain is None:
        return None
    scale = trace.out_scale(block, layer)
    return gain[layer], getattr(w, f"{block}_out_b")[layer], scale


def centre(trace: Trace, v: torch.Tensor) -> torch.Tensor:
    """``C(v)``: v less its mean over the last axis for a LayerNorm model, else v."""
    return v - v.mean(dim=-1, keepdim=True) if trace.dims.norm == "layernorm" else v


def _direction(trace: Trace, layer: int, block: str, v: torch.Tensor) -> torch.Tensor:
    """``C(v) * g``: a part's direction after the output map, before its per-position scale."""
    norm = _out_norm(trace, layer, block)
    return v if norm is None else centre(trace, v) * norm[0]


def output_direction(trace: Trace, layer: int, block: str, v: torch.Tensor) -> torch.Tensor:
    """``C(v) * g`` of block ``block``'s output map for parts v [..., d] (v for pre-norm)."""
    return _direction(trace, layer, block, v)


def inverse_scale(trace: Trace, layer: int, block: str) -> Float[torch.Tensor, " T"]:
    """``1 / s_i`` of block ``block`` ("attn" or "mlp"): ones for pre-norm blocks."""
    norm = _out_norm(trace, layer, block)
    return torch.ones(trace.n_tokens) if norm is None else 1.0 / norm[2][:, 0]


def _mapped(trace: Trace, layer: int, block: str, v: torch.Tensor) -> torch.Tensor:
    """``P_i(v)`` for v [T, d] (without the norm's bias)."""
    return _direction(trace, layer, block, v) * inverse_scale(trace, layer, block)[:, None]


def value_outputs(trace: Trace, layer: int) -> Float[torch.Tensor, "H T d"]:
    """u'[h, j]: the direction of what head h writes if it attends only to token j (no value
    bias; through the output map's centring and gain)."""
    w = trace.weights
    v = repeat_kv(trace.values(layer), trace.n_heads, dim=1) - w.b_V[layer]  # [T, H, d_head]
    u = torch.einsum("thd,hdm->htm", v, w.W_O[layer])
    return _direction(trace, layer, "attn", u)


def head_scales(trace: Trace, layer: int, queries: Positions | None = None):
    """A[h, i, j] / s_i  [H, Q, T]: the scalar of part (j, h) of query i."""
    q = position_index(queries, trace.n_tokens)
    rows = trace.pattern_rows(layer, q)
    if _out_norm(trace, layer, "attn") is None:  # pre-norm: s_i = 1
        return rows
    return rows * inverse_scale(trace, layer, "attn")[q][None, :, None]


def attention_target(trace: Trace, layer: int) -> Float[torch.Tensor, "T d"]:
    """The residual node the attention block writes into: mid (out for parallel blocks)."""
    return trace.resid_post(layer) if trace.family.parallel else trace.resid_mid(layer)


def attention_residual(trace: Trace, layer: int) -> Float[torch.Tensor, "T d"]:
    """The residual part of the attention target: x, or P(x) where the sum is normed."""
    x = trace.resid_pre(layer)
    return _mapped(trace, layer, "attn", x) if trace.family.norm_placement == "post" else x


def parallel_mlp_write(trace: Trace, layer: int) -> Float[torch.Tensor, "T d"] | None:
    """The MLP's write, a part of the attention target of a parallel block (else None)."""
    return trace.block_write("mlp", layer) if trace.family.parallel else None


def attention_bias(trace: Trace, layer: int) -> Float[torch.Tensor, "T d"]:
    """The unattributed part of the attention write: ``P(b_V @ W_O + b_O)`` plus the norm's
    bias, per position."""
    w = trace.weights
    raw = torch.einsum("hd,hdm->m", w.b_V[layer], w.W_O[layer]) + w.b_O[layer]
    bias = _mapped(trace, layer, "attn", raw.expand(trace.n_tokens, -1))
    norm = _out_norm(trace, layer, "attn")
    return bias if norm is None else bias + norm[1]


def attention_parts(
    trace: Trace, layer: int, queries: Positions | None = None, u: torch.Tensor | None = None
) -> Float[torch.Tensor, "Q T H d"]:
    """z[i, j, h] = A[h, i, j] / s_i * u'[h, j] for the query positions ``queries``.

    This is the per-source-token, per-head write. Memory is Q*T*H*d floats: chunk ``queries``.
    """
    u = value_outputs(trace, layer) if u is None else u  # [H, T, d]
    return torch.einsum("hqt,htm->qthm", head_scales(trace, layer, queries), u)


def edge_parts(trace: Trace, layer: int, query: int, source: int) -> Float[torch.Tensor, "H d"]:
    """z[query, source, h] for every head: what each head writes at ``query`` from ``source``
    alone (``attention_parts(trace, layer, [query])[0, source]``, without every source's u)."""
    w = trace.weights
    v = repeat_kv(trace.values(layer)[source : source + 1], trace.n_heads, dim=1)[0]
    u = _direction(trace, layer, "attn", torch.einsum("hd,hdm->hm", v - w.b_V[layer],
                                                      w.W_O[layer]))  # fmt: skip
    return head_scales(trace, layer, [query])[:, 0, source, None] * u


def head_outputs(
    trace: Trace, layer: int, positions: Positions | None = None
) -> Float[torch.Tensor, "P H d"]:
    """Per-head block output sum_j A[h,i,j] / s_i u'[h,j] at the given positions."""
    scales = head_scales(trace, layer, positions)  # [H, P, T]
    return torch.einsum("hpt,htm->phm", scales, value_outputs(trace, layer))


def head_writes_at(trace: Trace, layer: int, pos: int) -> Float[torch.Tensor, "H d"]:
    """``head_outputs(trace, layer, [pos])[0]`` without every source's u: the pattern row is
    contracted with the values first (O(T H d_head + H d_head d))."""
    w = trace.weights
    v = repeat_kv(trace.values(layer), trace.n_heads, dim=1) - w.b_V[layer]  # [T, H, d_head]
    mixed = torch.einsum("ht,thd->hd", head_scales(trace, layer, [pos])[:, 0], v)
    return _direction(trace, layer, "attn", torch.einsum("hd,hdm->hm", mixed, w.W_O[layer]))


def mlp_write_at(trace: Trace, layer: int, pos: int) -> Float[torch.Tensor, " d"]:
    """``mlp_output(trace, layer)[pos]``, for one position only."""
    write = neuron_scales(trace, layer, [pos])[0] @ neuron_directions(trace, layer)
    return write + mlp_bias(trace, layer)[pos]


def attention_output(trace: Trace, layer: int) -> Float[torch.Tensor, "T d"]:
    """The attention block's whole write, rebuilt from its parts."""
    return head_outputs(trace, layer).sum(dim=1) + attention_bias(trace, layer)


def neuron_directions(trace: Trace, layer: int) -> Float[torch.Tensor, "d_mlp d"]:
    """C(W_out[n]) * g: each neuron's write direction through the output map."""
    return _direction(trace, layer, "mlp", trace.weights.W_out[layer])


def neuron_scales(trace: Trace, layer: int, positions: Positions | None = None):
    """a[i, n] / s_i  [P, d_mlp]: the scalar of neuron n's part at position i."""
    p = position_index(positions, trace.n_tokens)
    return trace.mlp_post(layer)[p] * inverse_scale(trace, layer, "mlp")[p][:, None]


def mlp_residual(trace: Trace, layer: int) -> Float[torch.Tensor, "T d"]:
    """The residual part of the MLP target out: mid, P(mid) where the sum is normed, or
    everything but the MLP's write for a parallel block."""
    if trace.family.parallel:
        return trace.resid_post(layer) - trace.block_write("mlp", layer)
    mid = trace.resid_mid(layer)
    return _mapped(trace, layer, "mlp", mid) if trace.family.norm_placement == "post" else mid


def mlp_bias(trace: Trace, layer: int) -> Float[torch.Tensor, "T d"]:
    """The unattributed part of the MLP write: ``P(b_out)`` plus the norm's bias."""
    raw = trace.weights.b_out[layer].expand(trace.n_tokens, -1)
    norm = _out_norm(trace, layer, "mlp")
    bias = _mapped(trace, layer, "mlp", raw)
    return bias if norm is None else bias + norm[1]


def neuron_outputs(
    trace: Trace, layer: int, positions: Positions | None = None
) -> Float[torch.Tensor, "P d_mlp d"]:
    """Per-neuron MLP write a[i, n] / s_i * W_out'[n] at the given positions."""
    return neuron_scales(trace, layer, positions)[:, :, None] * neuron_directions(trace, layer)


def mlp_output(trace: Trace, layer: int) -> Float[torch.Tensor, "T d"]:
    """The MLP block's whole write, rebuilt from its neurons."""
    return neuron_scales(trace, layer) @ neuron_directions(trace, layer) + mlp_bias(trace, layer)


def _relative_error(rebuilt: torch.Tensor, actual: torch.Tensor) -> float:
    scale = actual.abs().max().clamp_min(1e-12)
    return float((rebuilt - actual).abs().max() / scale)


def attention_conservation_error(trace: Trace, layer: int) -> float:
    """max |sum A*u + bias - (target - residual [- mlp write])| / max |...| (invariant 1)."""
    actual = attention_target(trace, layer) - attention_residual(trace, layer)
    mlp = parallel_mlp_write(trace, layer)
    if mlp is not None:
        actual = actual - mlp
    return _relative_error(attention_output(trace, layer), actual)


def mlp_conservation_error(trace: Trace, layer: int) -> float:
    """max |sum a*W_out + bias - (out - residual)| / max |out - residual| (invariant 1)."""
    actual = trace.resid_post(layer) - mlp_residual(trace, layer)
    return _relative_error(mlp_output(trace, layer), actual)
