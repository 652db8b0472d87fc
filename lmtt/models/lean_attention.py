"""Attention without its T x T tensors, for captures that do not read the pattern.

TransformerLens's bridge rebuilds GPT-2-style joint-QKV attention eagerly: it materialises
the scores and the pattern ([B, H, T, T] each, 805 MB apiece per layer at T = 4096) so that
hooks can read them, and keeps each layer's pattern on the module after the forward. A route
trace reads neither (it keeps the queries and keys and computes pattern rows when asked), so
inside :func:`lean_attention` those modules compute ``softmax(q k^T * scale) v`` with
PyTorch's fused ``scaled_dot_product_attention`` instead: the same function, to float
rounding, in memory linear in T. The q, k, v, z and output hooks fire as before; the pattern
and score hooks do not, so the capture asks for the lean path only when it wants neither.
Anything the fused kernel would not reproduce (a KV cache, a mask other than Hugging Face's 4D
one, per-head results, upcast reordering, a subclass with its own attention) keeps the
bridge's own computation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformer_lens.model_bridge.generalized_components.joint_qkv_attention import (
    JointQKVAttentionBridge,
)

PATTERN_KINDS = frozenset(("pattern",))  # kinds only the eager computation gives


def _scale(attn) -> float:
    """The bridge's own score scale (with GPT-2's optional inverse-layer scaling)."""
    head_dim = int(attn.config.d_head)
    scale = head_dim**-0.5
    if (
        getattr(attn.config, "scale_attn_by_inverse_layer_idx", False)
        and attn._layer_idx is not None
    ):
        scale /= float(attn._layer_idx + 1)
    return scale


def _mask(attn, kwargs: dict, seq: int):
    """The attention mask as the fused kernel takes it: None (causal by the kernel), a
    Hugging Face 4D [B, 1, T, T] mask (additive float or boolean, causality included), or
    False when the mask has another form (the bridge's own computation handles it)."""
    mask = kwargs.get("attention_mask")
    if mask is None:
        return None
    if mask.ndim != 4 or tuple(mask.shape[-2:]) != (seq, seq):
        return False
    if mask.dtype == torch.bool:
        return mask
    return attn._normalize_compatibility_mask_sentinel(mask)


def _can_be_lean(attn, kwargs: dict) -> bool:
    if kwargs.get("past_key_values") is not None or kwargs.get("layer_past") is not None:
        return False
    if getattr(attn, "_reorder_and_upcast_attn", False):
        return False
    return not getattr(attn.config, "use_attn_result", False)


def _lean_forward(attn, original):
    """``attn._reconstruct_attention`` through the fused kernel (else ``original``)."""

    def reconstruct(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs) -> tuple:
        if not _can_be_lean(attn, kwargs):
            return original(q, k, v, **kwargs)
        n_heads = attn.config.n_heads
        n_kv = getattr(attn.config, "n_key_value_heads", None) or n_heads
        q4, k4, v4, batch, seq, head_dim = attn._reshape_qkv_to_heads(q, k, v, n_heads, n_kv)
        mask = _mask(attn, kwargs, seq)
        if mask is False or k4.shape[-2] != seq:
            return original(q, k, v, **kwargs)
        if n_kv != n_heads:
            k4 = k4.repeat_interleave(n_heads // n_kv, dim=1)
            v4 = v4.repeat_interleave(n_heads // n_kv, dim=1)
        causal = mask is None and bool(attn.is_causal) and not attn.is_cross_attention
        if mask is not None and mask.dtype != torch.bool:
            mask = mask.to(q4.dtype)
        z = torch.nn.functional.scaled_dot_product_attention(
            q4, k4, v4, attn_mask=mask, is_causal=causal, scale=_scale(attn)
        )
        z = attn._reshape_attn_output(z, batch, seq, n_heads, head_dim)
        return (attn._apply_output_projection(z), None)

    return reconstruct


def wants_pattern(kinds) -> bool:
    """Whether activations of these kinds need the eager attention (the pattern)."""
    return bool(PATTERN_KINDS & set(kinds))


@contextmanager
def lean_attention(bridge, enabled: bool) -> Iterator[int]:
    """Within the block (if ``enabled``: nothing reads the pattern), the bridge's exact-class
    joint-QKV attention modules use the fused kernel; yields how many were made lean. Every
    module is restored (and its kept pattern dropped) on exit. Call it under the model's
    lock: it changes the shared modules for the length of one forward pass."""
    lean = []
    if enabled:
        for block in bridge.blocks:
            attn = getattr(block, "attn", None)
            if type(attn) is JointQKVAttentionBridge:
                attn._reconstruct_attention = _lean_forward(attn, attn._reconstruct_attention)
                lean.append(attn)
    try:
        yield len(lean)
    finally:
        for attn in lean:
            del attn._reconstruct_attention  # the class's method again
        for block in bridge.blocks:
            if getattr(block, "attn", None) is not None and hasattr(block.attn, "_pattern"):
                block.attn._pattern = None  # the bridge keeps the last pattern: let it go
