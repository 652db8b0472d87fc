"""Lean attention for the bridge's rotary attention (Llama, Mistral, Qwen, Gemma, OLMo, ...).

TransformerLens's ``PositionEmbeddingsAttentionBridge.forward`` rebuilds attention eagerly so
that its score and pattern hooks can fire: a [B, H, T, T] float32 score tensor, its mask, its
softmax and a NaN scrub, every layer. :func:`lean_rotary_forward` runs the same steps up to
the rotated queries and keys (the q, k, v, q/k-norm, cos/sin, rotated-q/k and z hooks fire as
before) and then PyTorch's fused ``scaled_dot_product_attention`` with the same mask and
scale. Every variant this does not reproduce (a KV cache, split or gated q, soft-capping,
attention sinks, clipped or multiplied keys, interleaved rotations, a gate, per-head results,
a subclass) runs the bridge's own forward instead, decided before any work is done.
"""

from __future__ import annotations

import torch
from transformer_lens.model_bridge.generalized_components.position_embeddings_attention import (
    PositionEmbeddingsAttentionBridge,
)
from transformer_lens.utilities.hf_utils import get_rotary_pct_from_config
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from lmtt.models.fused_attention import CACHE_ARGUMENTS, fused_attention, fused_mask

_CONFIG_REFUSALS = (  # bridge config flags whose variants the lean path does not rebuild
    "use_split_qkv_input",
    "use_attn_in",
    "gated_q_proj",
    "rotary_interleaved_cos_sin",
    "rotary_adjacent_pairs",
    "qk_norm_after_rope",
    "use_attn_result",
)
_HF_REFUSALS = ("key_multiplier", "sinks", "attn_logit_softcapping")


def _hf_config_refuses(hf_attn) -> bool:
    config = getattr(hf_attn, "config", None)
    if getattr(config, "clip_qkv", None) is not None:
        return True
    rope = getattr(config, "rope_parameters", None)
    return isinstance(rope, dict) and rope.get("llama_4_scaling_beta") is not None


def can_be_lean(attn, kwargs: dict) -> bool:
    """Whether this call's attention is plain softmax(q k^T * scaling) v under a causal or
    Hugging Face 4D mask, so that the fused kernel gives the bridge's result."""
    if type(attn) is not PositionEmbeddingsAttentionBridge or attn.training:
        return False
    if any(kwargs.get(k) is not None for k in CACHE_ARGUMENTS):
        return False
    if any(getattr(attn.config, flag, False) for flag in _CONFIG_REFUSALS):
        return False
    hf_attn = attn.original_component
    if any(getattr(hf_attn, name, None) is not None for name in _HF_REFUSALS):
        return False
    gate = attn._modules.get("gate")
    if gate is not None and gate.original_component is not None:
        return False
    return not _hf_config_refuses(hf_attn)


def _qk_norm(attn, q: torch.Tensor, k: torch.Tensor, phase: str, head_dim: int) -> tuple:
    """The bridge's query/key norms of ``phase`` ("pre_reshape" on [B, T, H d_head],
    "post_reshape" on [B, H, T, d_head]) with their hooks; q and k unchanged without one."""
    if "q_norm" not in attn.submodules or attn._qk_norm_phase != phase:
        return q, k
    has_k = "k_norm" in attn.submodules
    if phase == "pre_reshape":
        q = attn._apply_pre_reshape_qk_norm(q, attn.q_norm, attn.hook_q_normed, head_dim)
        if has_k:
            k = attn._apply_pre_reshape_qk_norm(k, attn.k_norm, attn.hook_k_normed, head_dim)
        return q, k
    per_head = attn._qk_norm_per_head  # per-head weights broadcast on [B, T, H, d_head]

    def norm(x, module, hook):
        return hook(module(x.transpose(1, 2)).transpose(1, 2) if per_head else module(x))

    q = norm(q, attn.q_norm, attn.hook_q_normed)
    return q, (norm(k, attn.k_norm, attn.hook_k_normed) if has_k else k)


def _rotate(q: torch.Tensor, k: torch.Tensor, cos, sin, head_dim: int, config) -> tuple:
    """Rotary embeddings as the bridge applies them: full, GPT-OSS half-width, or partial."""
    rotary_dim = cos.shape[-1]
    if rotary_dim * 2 == head_dim and get_rotary_pct_from_config(config) == 1.0:
        return apply_rotary_pos_emb(q, k, torch.cat([cos, cos], -1), torch.cat([sin, sin], -1))
    if rotary_dim < head_dim:
        q_rot, k_rot = apply_rotary_pos_emb(q[..., :rotary_dim], k[..., :rotary_dim], cos, sin)
        q = torch.cat([q_rot, q[..., rotary_dim:]], dim=-1)
        return q, torch.cat([k_rot, k[..., rotary_dim:]], dim=-1)
    return apply_rotary_pos_emb(q, k, cos, sin)


def _fused_ready(attn, args: tuple, kwargs: dict, seen: dict):
    """(hidden states, mask for the fused kernel) when this call can be lean, else None."""
    hidden = kwargs.get("hidden_states", args[0] if args else None)
    if not isinstance(hidden, torch.Tensor) or not can_be_lean(attn, kwargs):
        return None
    if kwargs.get("position_embeddings") is None:  # the bridge warns (rotary) or runs unrotated
        return None
    mask = fused_mask(attn, kwargs, hidden.shape[-2], seen)
    return None if mask is False else (hidden, mask)


def lean_rotary_forward(attn, original, seen: dict):
    """``attn.forward`` with the fused kernel for the scores, pattern and z, where
    :func:`can_be_lean` (else ``original``): the same hooks up to the rotated q and k;
    ``seen``: the pass's masks already checked (:func:`fused_mask`)."""

    def forward(*args, **kwargs):
        ready = _fused_ready(attn, args, kwargs, seen)
        if ready is None:
            return original(*args, **kwargs)
        hidden, mask = ready
        hidden = attn.hook_in(hidden)
        head_dim = attn.original_component.head_dim
        shape = (*hidden.shape[:-1], -1, head_dim)
        q, k, v = attn.q(hidden), attn.k(hidden), attn.v(hidden)
        q, k = _qk_norm(attn, q, k, "pre_reshape", head_dim)
        q, k, v = (x.view(shape).transpose(1, 2) for x in (q, k, v))
        q, k = _qk_norm(attn, q, k, "post_reshape", head_dim)
        cos, sin = attn._apply_position_embedding_hooks(kwargs["position_embeddings"])
        q, k = _rotate(q, k, cos, sin, head_dim, attn.config)
        q = attn.hook_rot_q(q) if hasattr(attn, "hook_rot_q") else q
        k = attn.hook_rot_k(k) if hasattr(attn, "hook_rot_k") else k
        scale = getattr(attn.original_component, "scaling", head_dim**-0.5)
        z = fused_attention(attn, q, k, v, mask, scale)
        z = z.transpose(1, 2).reshape(*hidden.shape[:-1], -1)
        weight = getattr(getattr(attn.o, "original_component", None), "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dtype.is_floating_point:
            z = z.to(weight.dtype)
        return attn.hook_out(attn.o(z)), None

    return forward


def _eager_attention(attn, q, k, v, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The bridge's own scores, mask, pattern hooks and softmax: (z, pattern)."""
    if k.shape[1] != q.shape[1]:
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    scores = torch.matmul(q, k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    scores = attn._apply_reconstruct_attention_mask(
        attn_scores=scores,
        attention_mask=kwargs.get("attention_mask"),
        seq_len=k.shape[-2],
        q_seq_len=q.shape[-2],
    )
    pattern = attn._softmax_dropout_pattern(attn.hook_attn_scores(scores))
    return torch.matmul(pattern, v), pattern


def joint_rotary_reconstruct(attn, original, lean: bool, seen: dict):
    """``attn._reconstruct_attention`` for the bridge's joint-QKV rotary attention (GPT-NeoX,
    Falcon, Phi-3), as the bridge computes it plus the rotated-q/k hooks it registers but
    never fires; with ``lean``, the fused kernel instead of the eager scores where the mask
    allows (``seen``: the pass's masks already checked). A KV cache, per-head results or a
    call without rotary embeddings keep ``original``."""

    def reconstruct(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs) -> tuple:
        cached = any(kwargs.get(key) is not None for key in CACHE_ARGUMENTS)
        rotary = isinstance(kwargs.get("position_embeddings"), tuple)
        if cached or not rotary or getattr(attn.config, "use_attn_result", False):
            return original(q, k, v, **kwargs)
        n_heads = attn.config.n_heads
        n_kv = getattr(attn.config, "n_key_value_heads", None) or n_heads
        q, k, v, batch, seq, head_dim = attn._reshape_qkv_to_heads(q, k, v, n_heads, n_kv)
        cos, sin = attn._apply_position_embedding_hooks(kwargs["position_embeddings"])
        q, k = attn._apply_rotary_pos_emb(q, k, cos, sin)
        q, k = attn.hook_rot_q(q), attn.hook_rot_k(k)
        mask = fused_mask(attn, kwargs, seq, seen) if lean and not attn.training else False
        if mask is False:
            z, pattern = _eager_attention(attn, q, k, v, kwargs)
        else:
            z, pattern = fused_attention(attn, q, k, v, mask, head_dim**-0.5), None
        z = attn._reshape_attn_output(z, batch, seq, n_heads, head_dim)
        return attn._apply_output_projection(z), pattern

    return reconstruct
