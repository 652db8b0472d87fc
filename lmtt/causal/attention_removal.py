"""Removing attention edges at each head's output: ``z[q, h] -= A[h, q, j] v[j, h]``.

The bridge gives some families' patterns after the attention has used them (editing them
changes nothing), so lmtt takes the term out of the head's output ``z`` instead, which every
family computes as ``z[q, h] = sum_j A[h, q, j] v[j, h]`` (v repeated per query head under
grouped-query attention). The pattern and values are read in the same pass, as edited
upstream; where the pattern is only reported after ``z`` (BERT), an encoder's pattern is
rebuilt from its queries and keys, ``softmax(q k^T / sqrt(d_head))``.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float

from lmtt.errors import InterventionError
from lmtt.models.intervene import HookEdit
from lmtt.models.weights import repeat_kv


def _values(seen: dict, layer: int, n_heads: int) -> torch.Tensor:
    """[B, T, H, d_head]: the layer's values, one per query head."""
    return repeat_kv(seen[("v", layer)], n_heads, dim=2)


def _reads(layer: int) -> tuple:
    return (("pattern", layer), ("v", layer), ("q", layer), ("k", layer))


def _pattern(model, seen: dict, layer: int) -> torch.Tensor:
    """[B, H, T, T]: the layer's pattern in this pass (rebuilt for an encoder that reports it
    only after the heads' outputs)."""
    key = ("pattern", layer)
    if key in seen:
        return seen[key]
    if not model.family.is_encoder:
        raise InterventionError(
            f"{model.name}'s attention pattern is not available before its heads' outputs, so "
            "attention edges cannot be removed for this family yet."
        )
    q = seen[("q", layer)]
    k = repeat_kv(seen[("k", layer)], model.dims.n_heads, dim=2)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * model.dims.d_head**-0.5
    return scores.softmax(-1)


def edge_removal(model, layer: int, rows, heads, queries, keys) -> HookEdit:
    """Remove the edges (row, head, query, key) (index lists of one length) from layer's z."""
    H = model.dims.n_heads
    r, h, q, k = (torch.tensor(x, dtype=torch.long) for x in (rows, heads, queries, keys))

    def apply(t, seen):
        a = _pattern(model, seen, layer)[r, h, q, k]  # [N]
        v = _values(seen, layer, H)[r, k, h]  # [N, d_head]
        out = t.clone()
        out.index_put_((r, q, h), -(a[:, None] * v).to(out), accumulate=True)
        return out

    return HookEdit("z", layer, apply, _reads(layer))


def masked_attention(
    model, layer: int, keep: Bool[torch.Tensor, "B T T"] | Float[torch.Tensor, "B T T"]
) -> HookEdit:
    """Keep only the (query, key) edges ``keep[b]`` of every head in row b of layer's z (a
    float ``keep`` scales each edge's term)."""
    H = model.dims.n_heads
    drop = 1 - keep.float()

    def apply(t, seen):
        removed = _pattern(model, seen, layer) * drop[:, None].to(t)  # [B, H, T, T]
        return t - torch.einsum("bhqj,bjhd->bqhd", removed, _values(seen, layer, H).to(t))

    return HookEdit("z", layer, apply, _reads(layer))


def edge_attribution(
    pattern: Float[torch.Tensor, "H T T"],
    values: Float[torch.Tensor, "T H_kv d"],
    grad_z: Float[torch.Tensor, "T H d"],
) -> Float[torch.Tensor, "H T T"]:
    """First-order estimate, per head, of each edge's removal: ``A[h, q, j] (g_z[q, h] .
    v[j, h])`` (the gradient at z times the term the removal subtracts)."""
    v = repeat_kv(values, pattern.shape[0], dim=1)
    return pattern * torch.einsum("qhd,jhd->hqj", grad_z, v)
