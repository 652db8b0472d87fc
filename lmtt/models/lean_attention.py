"""Attention without its T x T tensors, for captures that do not read the pattern.

TransformerLens's bridge rebuilds attention eagerly (GPT-2's joint QKV here, the rotary
attention of Llama-style models in :mod:`lmtt.models.lean_rotary`): it materialises
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
from transformer_lens.model_bridge.generalized_components.joint_qkv_position_embeddings_attention import (  # noqa: E501
    JointQKVPositionEmbeddingsAttentionBridge,
)
from transformer_lens.model_bridge.generalized_components.position_embeddings_attention import (
    PositionEmbeddingsAttentionBridge,
)

from lmtt.models.fused_attention import CACHE_ARGUMENTS, fused_attention, fused_mask
from lmtt.models.lean_rotary import joint_rotary_reconstruct, lean_rotary_forward

PATTERN_KINDS = frozenset(("pattern",))  # kinds only the eager computation gives


def bridge_scale(attn) -> float:
    """The bridge's own score scale (with GPT-2's optional inverse-layer scaling)."""
    head_dim = int(attn.config.d_head)
    scale = head_dim**-0.5
    if (
        getattr(attn.config, "scale_attn_by_inverse_layer_idx", False)
        and attn._layer_idx is not None
    ):
        scale /= float(attn._layer_idx + 1)
    return scale


def _can_be_lean(attn, kwargs: dict) -> bool:
    if any(kwargs.get(key) is not None for key in CACHE_ARGUMENTS):
        return False
    if getattr(attn, "_reorder_and_upcast_attn", False):
        return False
    return not getattr(attn.config, "use_attn_result", False)


def _lean_forward(attn, original, seen: dict):
    """``attn._reconstruct_attention`` through the fused kernel (else ``original``);
    ``seen``: the pass's masks already checked (:func:`fused_mask`)."""

    def reconstruct(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs) -> tuple:
        if not _can_be_lean(attn, kwargs):
            return original(q, k, v, **kwargs)
        n_heads = attn.config.n_heads
        n_kv = getattr(attn.config, "n_key_value_heads", None) or n_heads
        q4, k4, v4, batch, seq, head_dim = attn._reshape_qkv_to_heads(q, k, v, n_heads, n_kv)
        mask = fused_mask(attn, kwargs, seq, seen)
        if mask is False or k4.shape[-2] != seq:
            return original(q, k, v, **kwargs)
        z = fused_attention(attn, q4, k4, v4, mask, bridge_scale(attn))
        z = attn._reshape_attn_output(z, batch, seq, n_heads, head_dim)
        return (attn._apply_output_projection(z), None)

    return reconstruct


def wants_pattern(kinds) -> bool:
    """Whether activations of these kinds need the eager attention (the pattern)."""
    return bool(PATTERN_KINDS & set(kinds))


def _shadow(attn, enabled: bool, seen: dict) -> str | None:
    """Shadow one attention module's method for this pass, on the instance's own dict (the
    bridge passes other attributes on to the HF module): the attribute's name, or None."""
    kind = type(attn)
    if kind is JointQKVPositionEmbeddingsAttentionBridge:  # lean or not: it fires rotated q, k
        method = joint_rotary_reconstruct(attn, attn._reconstruct_attention, enabled, seen)
        vars(attn)["_reconstruct_attention"] = method
        return "_reconstruct_attention"
    if enabled and kind is JointQKVAttentionBridge:
        method = _lean_forward(attn, attn._reconstruct_attention, seen)
        vars(attn)["_reconstruct_attention"] = method
        return "_reconstruct_attention"
    if enabled and kind is PositionEmbeddingsAttentionBridge:
        vars(attn)["forward"] = lean_rotary_forward(attn, attn.forward, seen)
        return "forward"
    return None


@contextmanager
def lean_attention(bridge, enabled: bool) -> Iterator[int]:
    """Within the block (if ``enabled``: nothing reads the pattern), the bridge's exact-class
    joint-QKV (GPT-2) and rotary (Llama-style, joint-QKV rotary) attention modules use the
    fused kernel; joint-QKV rotary modules (GPT-NeoX, Falcon, Phi-3) also fire their
    rotated-q/k hooks, lean or not. Yields how many modules were changed; every one is
    restored (and its kept pattern dropped) on exit. Call it under the model's lock: it
    changes the shared modules for the length of one forward pass."""
    shadowed = []  # (module, the attribute shadowed on it)
    seen: dict = {}  # the pass's attention masks, checked once (every layer shares one)
    try:
        for block in bridge.blocks:
            attn = getattr(block, "attn", None)
            name = _shadow(attn, enabled, seen) if attn is not None else None
            if name is not None:
                shadowed.append((attn, name))
        yield len(shadowed)
    finally:
        for attn, name in shadowed:
            del vars(attn)[name]  # the class's method again
        for block in bridge.blocks:
            if getattr(block, "attn", None) is not None and hasattr(block.attn, "_pattern"):
                block.attn._pattern = None  # the bridge keeps the last pattern: let it go
