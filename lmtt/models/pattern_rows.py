"""A trace's attention rows computed from its queries and keys (where it kept them instead of
the T x T pattern): ``rebuilt_rows(trace, layer, queries) -> [H, Q, key span]``.

Rows come in fixed blocks of ROW_BLOCK positions, so a row's bits never depend on which other
rows were asked for (lazy routes equal the full graph's). In a stacked trace (prompts laid
end to end, ``trace.stride`` positions each) a block lies within one prompt and its keys are
that prompt's: column j of a row is the key at position j of the query's own prompt.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int

ROW_BLOCK = 32  # pattern rows computed from q and k come in blocks of this many positions


def rebuilt_rows(trace, layer: int, idx: Int[torch.Tensor, " Q"]) -> Float[torch.Tensor, "H Q S"]:
    """softmax(q . k * scale) rows at the positions ``idx``, over the keys each query may
    attend (``trace.key_span`` columns; the keys a decoder's query cannot see are 0)."""
    span = trace.key_span
    local = idx % span
    starts = idx - local + (local // ROW_BLOCK) * ROW_BLOCK  # each row's block, as a position
    rows = torch.empty(trace.n_heads, len(idx), span)
    scratch = torch.empty(trace.n_heads, ROW_BLOCK, span)  # one block at a time
    for start in torch.unique(starts).tolist():
        asked = (starts == start).nonzero().flatten()  # where its rows go
        _row_block(trace, layer, start, scratch)
        within = idx[asked] - start
        n, a, r = len(asked), int(asked[0]), int(within[0])
        if torch.equal(asked, torch.arange(a, a + n)) and torch.equal(
            within, torch.arange(r, r + n)
        ):  # a run in order: a slice
            rows[:, a : a + n] = scratch[:, r : r + n]
        else:
            rows[:, asked] = scratch[:, within]
    return rows


def _row_block(trace, layer: int, start: int, out: Float[torch.Tensor, "H B S"]) -> None:
    """The pattern rows ``start ... start + ROW_BLOCK`` (within one prompt), computed from q
    and k into ``out`` [H, ROW_BLOCK, key span] (the keys a decoder's block cannot see, and
    the last block's padding rows, are 0: every block is computed alike)."""
    span = trace.key_span
    base = start - start % span  # the prompt's first position
    lo, hi = start - base, min(span, start - base + ROW_BLOCK)
    # a decoder's block sees keys up to its last query only: the later ones weigh 0
    n_keys = hi if trace.family.causal else span
    keys = trace.activations[("k", layer)][base : base + n_keys]  # [K, H_kv, d_head]
    H, Hkv = trace.n_heads, keys.shape[1]
    q = trace.queries(layer)[base + lo : base + hi].reshape(hi - lo, Hkv, H // Hkv, -1)
    scores = torch.einsum("qgrd,kgd->grqk", q, keys).reshape(H, hi - lo, n_keys)
    scores = trace.scores_from_dots(layer, scores)
    if trace.family.causal:
        scores.masked_fill_(~trace.visible_keys(layer, lo, hi, n_keys), float("-inf"))
    out[:, : hi - lo, :n_keys] = torch.softmax(scores, -1)
    out[:, : hi - lo, n_keys:] = 0.0
    out[:, hi - lo :] = 0.0
