"""A model's dimensions and the weights the decomposition reads, as plain float32 tensors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float

from lmtt.models.families import Family


@dataclass(frozen=True)
class ModelDims:
    family: str  # the family's name, e.g. "GPT-2"
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    n_ctx: int
    d_vocab: int
    norm: str  # "layernorm" or "rmsnorm"
    norm_eps: float


@dataclass(frozen=True, eq=False)
class ModelWeights:
    """The weights the decomposition reads, float32, detached (never written to)."""

    W_O: Float[torch.Tensor, "L H d_head d_model"]
    b_V: Float[torch.Tensor, "L H d_head"]  # per query head; zeros when the model has none
    b_O: Float[torch.Tensor, "L d_model"]
    W_out: Float[torch.Tensor, "L d_mlp d_model"]
    b_out: Float[torch.Tensor, "L d_model"]
    W_U: Float[torch.Tensor, "d_model d_vocab"]
    b_U: Float[torch.Tensor, " d_vocab"]
    ln_final_w: Float[torch.Tensor, " d_model"]
    ln_final_b: Float[torch.Tensor, " d_model"]  # zeros for RMSNorm


def repeat_kv(x: torch.Tensor, n_heads: int, dim: int) -> torch.Tensor:
    """Grouped-query attention: repeat each key/value head along ``dim`` so there is one per
    query head (query head h reads key/value head h // (n_heads / n_kv_heads))."""
    return x.repeat_interleave(n_heads // x.shape[dim], dim=dim)


def read_dims(bridge, family: Family) -> ModelDims:
    cfg = bridge.cfg
    n_kv = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    return ModelDims(
        family=family.name,
        n_layers=int(cfg.n_layers),
        n_heads=int(cfg.n_heads),
        n_kv_heads=int(n_kv),
        d_model=int(cfg.d_model),
        d_head=int(cfg.d_head),
        d_mlp=int(bridge.blocks[0].mlp.W_out.shape[0]),
        n_ctx=int(cfg.n_ctx),
        d_vocab=int(cfg.d_vocab),
        norm=family.norm,
        norm_eps=float(cfg.eps),
    )


def _f32(t: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
    if t is None:
        return torch.zeros(shape)
    return t.detach().float().cpu().reshape(shape)


def _norm_weight(w: torch.Tensor | None, d: int, offset: float) -> torch.Tensor:
    """A norm's effective gain: offset + weight (ones for a norm without weights)."""
    return torch.ones(d) if w is None else _f32(w, (d,)) + offset


def read_weights(bridge, dims: ModelDims, family: Family) -> ModelWeights:
    H, dh, d = dims.n_heads, dims.d_head, dims.d_model
    W_O, b_V, b_O, W_out, b_out = [], [], [], [], []
    for block in bridge.blocks:
        attn, mlp = block.attn, block.mlp
        W_O.append(_f32(attn.W_O, (H, dh, d)))
        b_V.append(repeat_kv(_f32(attn.b_V, (dims.n_kv_heads, dh)), H, dim=0))
        b_O.append(_f32(attn.b_O, (d,)))
        W_out.append(_f32(mlp.W_out, (dims.d_mlp, d)))
        b_out.append(_f32(mlp.b_out, (d,)))
    ln = bridge.ln_final
    return ModelWeights(
        W_O=torch.stack(W_O),
        b_V=torch.stack(b_V),
        b_O=torch.stack(b_O),
        W_out=torch.stack(W_out),
        b_out=torch.stack(b_out),
        W_U=_f32(bridge.W_U, (d, dims.d_vocab)),
        b_U=_f32(getattr(bridge, "b_U", None), (dims.d_vocab,)),
        ln_final_w=_norm_weight(getattr(ln, "w", None), d, family.norm_offset),
        ln_final_b=_f32(getattr(ln, "b", None), (d,)),
    )
