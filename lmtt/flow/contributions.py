"""L1-proximity contributions of parts to a whole (DESIGN.md §2).

For a whole ``y`` made of parts ``z_k`` (plus an unattributed bias)::

    raw_k = max(eps, ||y||_1 - ||y - z_k||_1)        c_k = raw_k / sum_k' raw_k'

Every part here has the form ``z_k = s_k * w_k`` (attention: ``A[h,i,j] * u[h,j]``; neuron:
``a[i,n] * W_out[n]``), so one fused kernel computes ``sum_d |y_d - s_k w_k,d|`` without ever
materialising the T x T x H x d tensor. Parts whose upper bound ``|s_k| * ||w_k||_1`` is at most
eps are not computed: their raw value is exactly eps. Causally masked pairs (j > i) are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int

from lmtt.flow import decompose
from lmtt.jit import njit, prange
from lmtt.models.trace import Trace

EPS = 1e-5
DEFAULT_MEMORY_BUDGET_MB = 512.0


TILE = 8  # queries sharing each part direction while it is in cache


@njit(parallel=True, fastmath={"reassoc", "nsz", "contract"})
def _proximity_kernel(y, scales, vecs, vec_norms, limits, offsets, eps, out):  # pragma: no cover
    """out[b, k*G + g] = max(eps, ||y_b||_1 - ||y_b - scales[g,b,k] * vecs[g,o_b+k]||_1), k <=
    limits[b], o_b = offsets[b].

    y [B, d], scales [G, B, K] (the pattern's own layout for attention), vecs [G, N, d],
    vec_norms [G, N], limits [B], offsets [B] (where row b's parts begin in vecs: 0 but in a
    stacked trace, whose rows read their own prompt's parts); out [B, >= K*G] (entries past a
    row's limit, and any columns after K*G, are left as they are). Each part direction is
    read once per tile of TILE queries (not once per query) while it is in cache; every entry
    is summed over d in the same order as one query at a time, so the tiling changes no bit.
    """
    B, d = y.shape
    G = vec_norms.shape[0]
    n_tiles = (B + TILE - 1) // TILE
    for gt in prange(G * n_tiles):
        g = gt // n_tiles
        b0 = (gt % n_tiles) * TILE
        b1 = min(B, b0 + TILE)
        k_last = 0
        for b in range(b0, b1):
            k_last = max(k_last, limits[b])
        for k in range(k_last + 1):
            for b in range(b0, b1):
                if k > limits[b]:
                    continue
                w = vecs[g, offsets[b] + k]
                s = scales[g, b, k]
                if abs(s) * vec_norms[g, offsets[b] + k] <= eps:
                    out[b, k * G + g] = eps
                    continue
                # sum_e |y_e| - |y_e - s w_e|: each term is at most |s w_e|, so summing the
                # differences keeps the small digits that ||y|| - ||y - z|| would cancel away.
                raw = np.float32(0.0)
                yb = y[b]
                for e in range(d):
                    raw += abs(yb[e]) - abs(yb[e] - s * w[e])
                out[b, k * G + g] = raw if raw > eps else eps


def part_norms(vecs: Float[torch.Tensor, "G K d"]) -> Float[torch.Tensor, "G K"]:
    """||w_k||_1 of the part directions (for the eps bound)."""
    return vecs.detach().float().abs().sum(dim=-1)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())


def _limits(limits, B: int, K: int) -> torch.Tensor:
    if limits is None:
        return torch.full((B,), K - 1, dtype=torch.long)
    return torch.as_tensor(limits, dtype=torch.long).reshape(-1).cpu()


def _offsets(offsets, B: int) -> torch.Tensor:
    if offsets is None:
        return torch.zeros(B, dtype=torch.long)
    return torch.as_tensor(offsets, dtype=torch.long).reshape(-1).cpu()


def _on_accelerator(device) -> bool:
    """Whether ``device`` is not the CPU (so the torch kernel runs there)."""
    return device is not None and torch.device(device).type != "cpu"


def raw_proximities(
    y: Float[torch.Tensor, "B d"],
    scales: Float[torch.Tensor, "G B K"],
    vecs: Float[torch.Tensor, "G N d"],
    limits=None,
    vec_norms: torch.Tensor | None = None,
    extra: int = 0,
    device: str | torch.device | None = None,
    eps: float = EPS,
    offsets=None,
) -> Float[torch.Tensor, "B n"]:
    """Raw proximities of parts ``scales[g,b,k] * vecs[g,offsets[b]+k]`` to ``y[b]`` as
    columns ``k*G + g`` of a [B, K*G + extra] tensor (the extra columns zero, for the
    caller's other parts); ``limits[b]`` is the last k of row b (later entries 0);
    ``offsets`` (default 0) where row b's parts begin in ``vecs``. On the CPU (device None or
    "cpu") the tiled numba kernel; elsewhere :func:`torch_proximities`."""
    G, B, K = scales.shape
    lim, off = _limits(limits, B, K), _offsets(offsets, B)
    if offsets is not None and len(off) and (off.min() < 0 or (off + lim).max() >= vecs.shape[1]):
        raise ValueError(f"offsets + limits must stay within the {vecs.shape[1]} parts of vecs.")
    if _on_accelerator(device):
        raw = torch_proximities(y, scales, vecs, lim, eps, device=device, offsets=offsets)
        return torch.cat([raw.permute(0, 2, 1).reshape(B, K * G), torch.zeros(B, extra)], 1)
    norms = part_norms(vecs) if vec_norms is None else vec_norms
    out = np.zeros((B, K * G + extra), dtype=np.float32)
    _proximity_kernel(_numpy(y), _numpy(scales), _numpy(vecs), _numpy(norms), lim.numpy(),
                      off.numpy(), np.float32(eps), out)  # fmt: skip
    return torch.from_numpy(out)


def torch_proximities(
    y: Float[torch.Tensor, "B d"],
    scales: Float[torch.Tensor, "G B K"],
    vecs: Float[torch.Tensor, "G N d"],
    limits: torch.Tensor,
    eps: float = EPS,
    device: str | torch.device = "cpu",
    memory_budget_mb: float = 256.0,
    offsets: torch.Tensor | None = None,
) -> Float[torch.Tensor, "B G K"]:
    """The proximity kernel in torch, on ``device`` (CUDA, MPS, or the CPU), in chunks of
    queries and parts whose [b, g, k, d] block fits ``memory_budget_mb``; equal to the numba
    kernel to float rounding. Returns [B, G, K] on the CPU."""
    G, B, K = scales.shape
    d = y.shape[-1]
    y, s, v = (t.detach().float().to(device) for t in (y, scales, vecs))
    lim = limits.to(device)
    off = None if offsets is None else _offsets(offsets, B).to(device)
    bound = v.abs().sum(-1)  # [G, N]
    copies = 3 if off is None else 4  # with offsets, each row's parts are gathered: one more
    per_row = max(1, int(memory_budget_mb * 2**20 // (4 * copies * G * d)))  # of (b, k) pairs
    k_chunk = min(K, per_row)
    b_chunk = max(1, per_row // k_chunk)
    out = torch.zeros(B, G, K, device=device)
    for b0 in range(0, B, b_chunk):
        yb = y[b0 : b0 + b_chunk, None, None, :]  # [b, 1, 1, d]
        for k0 in range(0, K, k_chunk):
            sk = s[:, b0 : b0 + b_chunk, k0 : k0 + k_chunk].transpose(0, 1)  # [b, G, k]
            k_idx = torch.arange(k0, k0 + sk.shape[-1], device=device)
            if off is None:  # every row reads parts k0 ... k1
                vk, nk = v[None, :, k0 : k0 + sk.shape[-1]], bound[None, :, k0 : k0 + sk.shape[-1]]
            else:  # row b reads parts off[b] + k (past the end only where k > limits[b])
                at = (off[b0 : b0 + b_chunk, None] + k_idx[None, :]).clamp_max(v.shape[1] - 1)
                vk, nk = v[:, at].transpose(0, 1), bound[:, at].transpose(0, 1)
            part = sk[..., None] * vk  # [b, G, k, d]
            raw = (yb.abs() - (yb - part).abs()).sum(-1).clamp_min(eps)
            raw = torch.where(sk.abs() * nk <= eps, eps, raw)
            live = k_idx[None, :] <= lim[b0 : b0 + b_chunk, None]  # [b, k]
            out[b0 : b0 + b_chunk, :, k0 : k0 + k_chunk] = raw * live[:, None, :]
    return out.cpu()


def proximity(
    y: Float[torch.Tensor, "B d"],
    scales: Float[torch.Tensor, "B G K"],
    vecs: Float[torch.Tensor, "G K d"],
    limits=None,
    eps: float = EPS,
    vec_norms: torch.Tensor | None = None,
) -> Float[torch.Tensor, "B G K"]:
    """Raw L1 proximities [B, G, K] of parts ``scales[b,g,k] * vecs[g,k]`` to wholes ``y[b]``.

    y [B, d], scales [B, G, K], vecs [G, K, d]; ``limits[b]`` (default K-1) is the last k
    computed for row b (causal mask); later entries are 0. ``vec_norms`` [G, K] can be passed
    when the same vecs serve several calls (query chunks).
    """
    B, G, K = scales.shape
    raw = raw_proximities(y, scales.transpose(0, 1), vecs, limits, vec_norms, eps=eps)
    return raw.reshape(B, K, G).transpose(1, 2)


def residual_proximity(
    y: Float[torch.Tensor, "*B d"], z: Float[torch.Tensor, "*B d"], eps: float = EPS
) -> Float[torch.Tensor, "*B"]:
    """Raw proximity of one part z to its whole y (vectorised)."""
    y, z = y.double(), z.double()  # a difference of two large norms: keep the small digits
    raw = y.abs().sum(-1) - (y - z).abs().sum(-1)
    return raw.clamp_min(eps).float()


def normalize(raw: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
    """c = raw / sum(raw) over the last dim; with ``threshold`` t, zero every c <= t and
    renormalise the rest. If no part of a whole exceeds t, its largest part is kept (weight 1),
    so every whole still sums to 1."""
    c = raw / raw.sum(dim=-1, keepdim=True)
    if threshold is None:
        return c
    above = c > threshold
    biggest = c == c.amax(dim=-1, keepdim=True)
    kept = above | (biggest & ~above.any(dim=-1, keepdim=True))
    c = torch.where(kept, c, torch.zeros_like(c))
    return c / c.sum(dim=-1, keepdim=True)


@dataclass(frozen=True, eq=False)
class AttentionContributions:
    """Contributions to the attention target (``mid[layer, i]``; ``out[layer, i]`` for a
    parallel block) for the query positions ``queries``.

    heads[q, j, h]: part (j, h) (0 for j > i in a decoder); residual[q]: the residual
    ``x[layer, i]``; mlp[q]: a parallel block's MLP write (None otherwise). In a stacked
    trace, j is a position of the query's own prompt (``trace.key_span`` of them).
    heads.sum((1, 2)) + residual (+ mlp) == 1 for every q.
    """

    layer: int
    queries: Int[torch.Tensor, " Q"]
    heads: Float[torch.Tensor, "Q T H"]
    residual: Float[torch.Tensor, " Q"]
    mlp: Float[torch.Tensor, " Q"] | None = None

    @property
    def sources(self) -> Float[torch.Tensor, "Q T"]:
        """Edge weights x[layer, j] -> mid[layer, i], summed over heads."""
        return self.heads.sum(dim=-1)

    @property
    def per_head(self) -> Float[torch.Tensor, "Q H"]:
        """The per-head view of the block: sum_j c[i, j, h]."""
        return self.heads.sum(dim=1)


def _query_chunk(trace: Trace, memory_budget_mb: float) -> int:
    T, H = trace.key_span, trace.dims.n_heads
    per_query = T * H * 4 * 3  # scales, raw and normalised contributions, float32
    return max(1, int(memory_budget_mb * 2**20 // per_query))


def attention_contributions(
    trace: Trace,
    layer: int,
    queries=None,
    renormalizing_threshold: float | None = None,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    u: torch.Tensor | None = None,
    device: str | torch.device | None = None,
) -> AttentionContributions:
    """Section 2 contributions for attention block ``layer`` at ``queries`` (default: all),
    computed in query chunks that fit ``memory_budget_mb``; on ``device`` (the model's, e.g.
    "cuda") by the torch kernel, else by the numba kernel on the CPU."""
    q_idx = decompose.position_index(queries, trace.n_tokens)
    u = decompose.value_outputs(trace, layer) if u is None else u  # [H, T, d]
    u_norms = part_norms(u)  # [H, T], shared by every chunk
    target = decompose.attention_target(trace, layer)
    others = [decompose.attention_residual(trace, layer)]
    mlp = decompose.parallel_mlp_write(trace, layer)
    if mlp is not None:
        others.append(mlp)
    chunk = _query_chunk(trace, memory_budget_mb)
    T, H, k = trace.key_span, trace.n_heads, len(others)
    parts = [torch.zeros(0, T * H + k)]
    for start in range(0, len(q_idx), chunk):
        q = q_idx[start : start + chunk]
        y = target[q]  # [Q, d]
        scales = decompose.head_scales(trace, layer, q)  # [H, Q, T]
        offsets = q - q % T  # where each query's prompt begins (0 but in a stacked trace)
        limits = q - offsets if trace.family.causal else torch.full_like(q, T - 1)
        # columns j*H + h: part (j, h), as heads[q, j, h]; then the other parts
        raw = raw_proximities(
            y, scales, u, limits, u_norms, extra=k, device=device, offsets=offsets
        )
        for c, o in enumerate(others):
            raw[:, T * H + c] = residual_proximity(y, o[q])
        parts.append(normalize(raw, renormalizing_threshold))
    c = parts[1] if len(parts) == 2 else torch.cat(parts)
    return AttentionContributions(
        layer, q_idx, c[:, : T * H].reshape(len(q_idx), T, H), c[:, T * H],
        c[:, T * H + 1] if mlp is not None else None,
    )  # fmt: skip


@dataclass(frozen=True, eq=False)
class MlpContributions:
    """Contributions to ``out[layer, i]``: the MLP write vs the residual ``mid[layer, i]``."""

    layer: int
    positions: Int[torch.Tensor, " P"]
    mlp: Float[torch.Tensor, " P"]
    residual: Float[torch.Tensor, " P"]


def _mlp_wholes(trace: Trace, layer: int, positions) -> tuple[torch.Tensor, ...]:
    """The positions [P], the wholes out[layer] [P, d] and their residual parts [P, d]."""
    p = decompose.position_index(positions, trace.n_tokens)
    return p, trace.resid_post(layer)[p], decompose.mlp_residual(trace, layer)[p]


def mlp_contributions(
    trace: Trace, layer: int, positions=None, renormalizing_threshold: float | None = None
) -> MlpContributions:
    p, out, mid = _mlp_wholes(trace, layer, positions)
    raw = torch.stack([residual_proximity(out, out - mid), residual_proximity(out, mid)], dim=1)
    c = normalize(raw, renormalizing_threshold)
    return MlpContributions(layer, p, c[:, 0], c[:, 1])


@dataclass(frozen=True, eq=False)
class NeuronContributions:
    """Per-neuron contributions to ``out[layer, i]``: ``neurons[p, n]`` (the part
    ``a[i, n] * W_out[n]``) and ``residual[p]`` (the part ``mid[layer, i]``)."""

    layer: int
    positions: Int[torch.Tensor, " P"]
    neurons: Float[torch.Tensor, "P d_mlp"]
    residual: Float[torch.Tensor, " P"]


def neuron_contributions(
    trace: Trace, layer: int, positions=None, renormalizing_threshold: float | None = None
) -> NeuronContributions:
    p, out, mid = _mlp_wholes(trace, layer, positions)
    a = decompose.neuron_scales(trace, layer, p)  # [P, d_mlp]
    W_out = decompose.neuron_directions(trace, layer)  # [d_mlp, d]
    raw = proximity(out, a[:, None, :], W_out[None])[:, 0]  # [P, d_mlp]
    raw = torch.cat([raw, residual_proximity(out, mid)[:, None]], dim=1)
    c = normalize(raw, renormalizing_threshold)
    return NeuronContributions(layer, p, c[:, :-1], c[:, -1])
