"""Removing residual skips: the hook edits, and the first-order estimate of their effect.

The bridge's resid_mid hook feeds only the MLP's norm (the block adds the unedited sum), so
with keep factors k1 (the skip around attention) and k2 (the skip around the MLP), per row and
position, a sequential pre-norm or sandwich block ``mid = x + a``, ``post = mid + m`` becomes
``mid' = k1 x + a`` and ``post' = k2 mid' + m(mid')`` by two edits:

- at resid_mid (what the MLP reads): ``t - (1 - k1) x``;
- at resid_post: ``t - (1 - k1 k2) x - (1 - k2) a``,

where ``x`` is the block's input and ``a`` the attention term the residual adds (a sandwich
block's normed write). A parallel block ``post = x + a + m`` subtracts ``(1 - k2) x`` at
resid_post; a post-norm block (BERT) subtracts ``(1 - k1) x`` from the sum its first norm reads
and ``(1 - k2) mid`` from the sum its second norm reads.
"""

from __future__ import annotations

import torch
from jaxtyping import Float

from lmtt.models.intervene import HookEdit, Key


def _scaled(keep: torch.Tensor, value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(1 - keep)[..., None] * value`` in ``like``'s dtype and device."""
    return (1 - keep)[..., None].to(like) * value


def skip_edits(
    model,
    layer: int,
    keep_mid: Float[torch.Tensor, "B T"] | None,
    keep_post: Float[torch.Tensor, "B T"] | None,
) -> list[HookEdit]:
    """The edits applying the skip keep factors of ``layer`` (None: every skip kept)."""
    family = model.family
    x = ("resid_pre", layer)
    if family.parallel:
        if keep_post is None:
            return []
        k2 = keep_post
        return [HookEdit("resid_post", layer, lambda t, s: t - _scaled(k2, s[x], t), (x,))]
    if family.norm_placement == "post":
        mid = ("resid_mid", layer)
        edits = []
        if keep_mid is not None:
            k1 = keep_mid
            edits.append(HookEdit("mid_sum", layer, lambda t, s: t - _scaled(k1, s[x], t), (x,)))
        if keep_post is not None:
            k2 = keep_post
            edits.append(
                HookEdit("post_sum", layer, lambda t, s: t - _scaled(k2, s[mid], t), (mid,))
            )
        return edits
    return _sequential_skips(layer, keep_mid, keep_post)


def _sequential_skips(layer: int, keep_mid, keep_post) -> list[HookEdit]:
    if keep_mid is None and keep_post is None:
        return []
    x, a = ("resid_pre", layer), ("attn_added", layer)
    ones = keep_mid if keep_post is None else keep_post
    k1 = torch.ones_like(ones) if keep_mid is None else keep_mid
    k2 = torch.ones_like(ones) if keep_post is None else keep_post

    def post(t, s):
        return t - _scaled(k1 * k2, s[x], t) - _scaled(k2, s[a], t)

    edits = [HookEdit("resid_post", layer, post, (x, a))]
    if keep_mid is not None:
        edits.append(HookEdit("resid_mid", layer, lambda t, s: t - _scaled(k1, s[x], t), (x,)))
    return edits


def skip_gradient_points(model, layer: int) -> list[Key]:
    """The activations whose values and gradients estimate a skip's removal."""
    if model.family.parallel:
        return [("resid_pre", layer), ("resid_post", layer)]
    if model.family.norm_placement == "post":
        return [("resid_pre", layer), ("resid_mid", layer), ("mid_sum", layer), ("post_sum", layer)]
    return [
        ("resid_pre", layer),
        ("attn_added", layer),
        ("resid_mid", layer),
        ("resid_post", layer),
    ]


def skip_attribution(model, layer: int, pos: int, into: str, acts: dict, grads: dict) -> float:
    """First-order estimate of ``metric(clean) - metric(skip removed)``: the gradient at each
    edited activation times the amount the removal subtracts there."""
    x = acts[("resid_pre", layer)][pos]
    if model.family.parallel:
        return float(grads[("resid_post", layer)][pos] @ x)
    if model.family.norm_placement == "post":
        if into == "mid":
            return float(grads[("mid_sum", layer)][pos] @ x)
        return float(grads[("post_sum", layer)][pos] @ acts[("resid_mid", layer)][pos])
    g_post = grads[("resid_post", layer)][pos]
    if into == "mid":
        return float((grads[("resid_mid", layer)][pos] + g_post) @ x)
    return float(g_post @ (x + acts[("attn_added", layer)][pos]))
