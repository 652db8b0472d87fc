"""softmax(q k^T * scale) v through PyTorch's fused kernel, with the bridge's masks.

Shared by the lean attention paths (:mod:`lmtt.models.lean_attention`,
:mod:`lmtt.models.lean_rotary`): the mask as the fused kernel takes it, and the kernel call
with grouped key heads repeated.
"""

from __future__ import annotations

import torch

# the names a KV cache arrives under (transformers' and the older families'): a call with one
# keeps the bridge's own attention
CACHE_ARGUMENTS = ("past_key_values", "layer_past", "cache")


def fused_mask(attn, kwargs: dict, seq: int, seen: dict | None = None):
    """The attention mask as the fused kernel takes it: None (causal by the kernel: no mask,
    or one that is exactly the causal mask), a Hugging Face 4D [B, 1, T, T] mask (additive
    float or boolean, causality included), or False when the mask has another form (the
    bridge's own computation handles it). ``seen`` (one per forward pass: every layer gets
    the same mask) keeps each mask's causality check, a T x T pass, from being repeated."""
    mask = kwargs.get("attention_mask")
    if mask is None:
        return None
    if mask.ndim != 4 or tuple(mask.shape[-2:]) != (seq, seq):
        return False
    if attn.is_causal and not attn.is_cross_attention and _is_causal(mask, seen):
        return None
    return mask if mask.dtype == torch.bool else attn._normalize_compatibility_mask_sentinel(mask)


def _is_causal(mask: torch.Tensor, seen: dict | None) -> bool:
    """Whether a [1, 1, T, T] mask is exactly the causal mask (then the kernel's own causal
    path, about twice as fast at T = 4096, gives the same result)."""
    if seen is not None and id(mask) in seen:
        return seen[id(mask)][1]
    causal = False
    if mask.shape[0] == 1:
        m = mask[0, 0]
        future = torch.ones(m.shape, dtype=torch.bool, device=m.device).triu_(1)
        if m.dtype == torch.bool:
            causal = torch.equal(m, ~future)
        else:
            blocked = m <= torch.finfo(m.dtype).min  # HF's sentinel (or -inf)
            causal = torch.equal(blocked, future) and not bool(m.masked_fill(blocked, 0).any())
    if seen is not None:
        seen[id(mask)] = (mask, causal)  # the mask held: its id is not reused meanwhile
    return causal


def fused_attention(
    attn, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask, scale: float
) -> torch.Tensor:
    """z [B, H, T, d_head] from q [B, H, T, d_head] and k, v [B, H_kv, T, d_head] under
    ``mask`` (from :func:`fused_mask`; None: causal where the module is)."""
    n_heads, n_kv = q.shape[1], k.shape[1]
    if n_kv != n_heads:
        k = k.repeat_interleave(n_heads // n_kv, dim=1)
        v = v.repeat_interleave(n_heads // n_kv, dim=1)
    causal = mask is None and bool(attn.is_causal) and not attn.is_cross_attention
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.to(q.dtype)
    return torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=causal, scale=scale
    )
