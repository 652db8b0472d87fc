"""One layer's query and key maps, read from the bridge when asked (DESIGN.md section 8).

With the input norm's scale frozen at its traced value, a head's query at position i is
``R_i((C(x_i) * g / s_i + b_norm) @ W_Q + b_Q)`` (``C`` centres for a LayerNorm, ``R_i`` the
rotary map at i, the identity for learned positions), and likewise its key: affine in the
residual ``x``, so the score splits over the residual's parts. This module gives the maps;
``lmtt.flow.score`` applies them.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from jaxtyping import Float

from lmtt.errors import LmttError
from lmtt.models.weights import as_f32, norm_gain, repeat_kv


class ScoreDecompositionError(LmttError):
    """This model's scores cannot be split into the residual's parts (yet)."""


@dataclass(frozen=True)
class QKWeights:
    """Layer ``layer``'s query and key maps, float32, one key head per query head."""

    W_Q: Float[torch.Tensor, "H d_model d_head"]
    b_Q: Float[torch.Tensor, "H d_head"]
    W_K: Float[torch.Tensor, "H d_model d_head"]
    b_K: Float[torch.Tensor, "H d_head"]
    norm_w: Float[torch.Tensor, " d_model"] | None  # None: the attention reads x unnormed
    norm_b: Float[torch.Tensor, " d_model"] | None
    q_norm_w: Float[torch.Tensor, "H d_head"] | None  # gains of the query/key norms, if any
    k_norm_w: Float[torch.Tensor, "H_kv d_head"] | None
    cos: Float[torch.Tensor, "T rot"] | None  # rotary cos/sin per position, None: no rotary
    sin: Float[torch.Tensor, "T rot"] | None

    def rotate(self, x: Float[torch.Tensor, "... d_head"], pos: int) -> torch.Tensor:
        """``R_pos(x)``: the rotate-half rotary map on the first ``rot`` dimensions."""
        if self.cos is None:
            return x
        cos, sin = self.cos[pos], self.sin[pos]
        n = cos.shape[-1]
        r, rest = x[..., :n], x[..., n:]
        half = torch.cat([-r[..., n // 2 :], r[..., : n // 2]], dim=-1)
        return torch.cat([r * cos + half * sin, rest], dim=-1)


def read_qk(bridge, dims, family, layer: int, n_tokens: int) -> QKWeights:
    """Layer ``layer``'s maps, with rotary cos/sin for positions 0..n_tokens-1."""
    why = _refusal(family)
    if why:
        raise ScoreDecompositionError(
            f"Scores of {family.name} cannot be split into upstream parts yet: {why}."
        )
    block = bridge.blocks[layer]
    attn = block.attn
    H, Hkv, d, dh = dims.n_heads, dims.n_kv_heads, dims.d_model, dims.d_head
    rotary = family.positions == "rotary"
    cos, sin = _rotary(bridge, attn, n_tokens, dh, layer) if rotary else (None, None)
    return QKWeights(
        W_Q=as_f32(attn.W_Q, (H, d, dh)),
        b_Q=as_f32(getattr(attn, "b_Q", None), (H, dh)),
        W_K=repeat_kv(as_f32(attn.W_K, (Hkv, d, dh)), H, dim=0),
        b_K=repeat_kv(as_f32(getattr(attn, "b_K", None), (Hkv, dh)), H, dim=0),
        **_input_norm(block, family, d),
        **_qk_norms(attn, family, H, Hkv, dh),
        cos=cos,
        sin=sin,
    )


@dataclass(frozen=True)
class ValueMap:
    """Layer ``layer``'s value map: a head's value at j is ``(C(x_j) * g / s_j + b) @ W_V``
    (plus b_V), so what it reads of the residual is its part in the columns of
    ``C diag(g) W_V`` (``lmtt.flow.read``)."""

    W_V: Float[torch.Tensor, "H d_model d_head"]  # one value head per query head
    norm_w: Float[torch.Tensor, " d_model"] | None  # None: the attention reads x unnormed
    norm_b: Float[torch.Tensor, " d_model"] | None


def read_value_map(bridge, dims, family, layer: int) -> ValueMap:
    """Layer ``layer``'s value map (every family: no rotary or query/key norm touches it)."""
    block = bridge.blocks[layer]
    H, Hkv, d, dh = dims.n_heads, dims.n_kv_heads, dims.d_model, dims.d_head
    return ValueMap(
        W_V=repeat_kv(as_f32(block.attn.W_V, (Hkv, d, dh)), H, dim=0),
        **_input_norm(block, family, d),
    )


def _input_norm(block, family, d: int) -> dict:
    """The gain and bias of the norm the attention reads its input through (None for both
    where it reads the residual unnormed: no pre-norm, or a post-norm block)."""
    norm = getattr(block, "ln1", None) if family.norm_placement != "post" else None
    if norm is None or "ln1_scale" not in family.hooks:
        return {"norm_w": None, "norm_b": None}
    return {"norm_w": norm_gain(getattr(norm, "w", None), d, family.norm_offset),
            "norm_b": as_f32(getattr(norm, "b", None), (d,))}  # fmt: skip


def _qk_norms(attn, family, H: int, Hkv: int, dh: int) -> dict:
    """The query and key norms' gains per head ([H, d_head] and [H_kv, d_head])."""
    if not family.qk_norm:
        return {"q_norm_w": None, "k_norm_w": None}
    gains = {}
    for side, n in (("q", H), ("k", Hkv)):
        w = as_f32(getattr(attn, f"{side}_norm").w, (-1,)) + family.norm_offset
        gains[f"{side}_norm_w"] = w.expand(n, dh) if w.numel() == dh else w.reshape(n, dh)
    return gains


def _refusal(family) -> str:
    if family.qk_refusal:
        return family.qk_refusal
    if family.positions == "alibi":
        return "ALiBi is not split yet"
    if family.rotate_captured_qk:
        return "its interleaved rotation is not split yet"
    return ""


def _rotary(bridge, attn, n_tokens: int, d_head: int, layer: int) -> tuple:
    """cos and sin [T, rot] from the model's own rotary module (scaling included)."""
    rotary = getattr(attn, "_rotary_emb", None) or getattr(bridge, "rotary_emb", None)
    if rotary is None:
        raise ScoreDecompositionError(
            "This model's rotary module was not found, so its scores cannot be split yet."
        )
    inv = getattr(rotary, "inv_freq", None)
    dtype = inv.dtype if inv is not None else torch.float32
    x = torch.zeros(
        1, n_tokens, d_head, dtype=dtype, device=inv.device if inv is not None else None
    )
    types = getattr(getattr(bridge.original_model, "config", None), "layer_types", None)
    hf_rotary = getattr(rotary, "original_component", None) or rotary
    per_type = "layer_type" in inspect.signature(hf_rotary.forward).parameters  # Gemma 3: two
    kind = {"layer_type": types[layer]} if per_type and types else {}
    with torch.no_grad():
        cos, sin = rotary(x, torch.arange(n_tokens, device=x.device)[None], **kind)
    return cos[0].float().cpu(), sin[0].float().cpu()
