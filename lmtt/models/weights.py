"""A model's dimensions and the weights the decomposition reads, as plain float32 tensors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

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
    mask_token_id: int | None = None  # a masked LM's [MASK]
    experts: tuple[int, ...] | None = None  # hidden units per expert (mixture of experts)

    def neuron_name(self, index: int) -> str:
        """``n12``, or for a mixture of experts ``E3 n12`` (``shared n4`` for Qwen2-MoE's
        shared expert, which comes last)."""
        if self.experts is None:
            return f"n{index}"
        for e, size in enumerate(self.experts):
            if index < size:
                shared = len(self.experts) > 1 and e == len(self.experts) - 1 and (
                    self.experts[-1] != self.experts[0]
                )  # fmt: skip
                return f"{'shared' if shared else f'E{e}'} n{index}"
            index -= size
        raise IndexError(index)


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
    # Norms each block's write passes through (sandwich and post norms), else None:
    attn_out_w: Float[torch.Tensor, "L d_model"] | None = None
    attn_out_b: Float[torch.Tensor, "L d_model"] | None = None
    mlp_out_w: Float[torch.Tensor, "L d_model"] | None = None
    mlp_out_b: Float[torch.Tensor, "L d_model"] | None = None
    final_softcap: float | None = None  # logits = cap * tanh(logits / cap) (Gemma 2)
    # A masked-LM head's transform before ln_final (dense + GELU), else None:
    lens_dense_W: Float[torch.Tensor, "d_model d_model"] | None = None
    lens_dense_b: Float[torch.Tensor, " d_model"] | None = None
    has_lens: bool = True  # False for an encoder saved without its masked-LM head
    # (layer, n_tokens) -> lmtt.models.qk_weights.QKWeights, read from the model when asked
    qk_reader: Callable | None = field(default=None, repr=False)
    v_reader: Callable | None = field(default=None, repr=False)  # layer -> ValueMap

    def query_key(self, layer: int, n_tokens: int):
        """Layer ``layer``'s query and key maps (``lmtt.models.qk_weights``)."""
        if self.qk_reader is None:
            raise RuntimeError("these weights were not read from a model")
        return self.qk_reader(layer, n_tokens)

    def value_map(self, layer: int):
        """Layer ``layer``'s value map (``lmtt.models.qk_weights.ValueMap``)."""
        if self.v_reader is None:
            raise RuntimeError("these weights were not read from a model")
        return self.v_reader(layer)


def repeat_kv(x: torch.Tensor, n_heads: int, dim: int) -> torch.Tensor:
    """Grouped-query attention: repeat each key/value head along ``dim`` so there is one per
    query head (query head h reads key/value head h // (n_heads / n_kv_heads))."""
    return x.repeat_interleave(n_heads // x.shape[dim], dim=dim)


def read_dims(bridge, family: Family, experts=None) -> ModelDims:
    cfg = bridge.cfg
    mask = getattr(bridge.tokenizer, "mask_token_id", None) if family.is_encoder else None
    n_kv = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    return ModelDims(
        family=family.name,
        n_layers=int(cfg.n_layers),
        n_heads=int(cfg.n_heads),
        n_kv_heads=int(n_kv),
        d_model=int(cfg.d_model),
        d_head=int(cfg.d_head),
        d_mlp=sum(experts.sizes) if experts else int(bridge.blocks[0].mlp.W_out.shape[0]),
        n_ctx=int(cfg.n_ctx),
        d_vocab=int(cfg.d_vocab),
        norm=family.norm,
        norm_eps=float(cfg.eps),
        mask_token_id=None if mask is None else int(mask),
        experts=experts.sizes if experts else None,
    )


def as_f32(t: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
    if t is None:
        return torch.zeros(shape)
    return t.detach().float().cpu().reshape(shape)


def norm_gain(w: torch.Tensor | None, d: int, offset: float) -> torch.Tensor:
    """A norm's effective gain: offset + weight (ones for a norm without weights)."""
    return torch.ones(d) if w is None else as_f32(w, (d,)) + offset


def read_weights(
    bridge, dims: ModelDims, family: Family, has_lens: bool = True, experts=None
) -> ModelWeights:
    """The weights; ``has_lens`` False for an encoder without a (trained) masked-LM head;
    ``experts`` (lmtt.models.moe) give a mixture of experts' unit directions as W_out."""
    H, dh, d = dims.n_heads, dims.d_head, dims.d_model
    W_O, b_V, b_O, W_out, b_out = [], [], [], [], []
    for layer, block in enumerate(bridge.blocks):
        attn, mlp = block.attn, block.mlp
        W_O.append(as_f32(attn.W_O, (H, dh, d)))
        b_V.append(repeat_kv(as_f32(attn.b_V, (dims.n_kv_heads, dh)), H, dim=0))
        b_O.append(as_f32(attn.b_O, (d,)))
        if experts is not None:
            W_out.append(experts.directions(layer))
            b_out.append(torch.zeros(d))
        else:
            W_out.append(as_f32(mlp.W_out, (dims.d_mlp, d)))
            b_out.append(as_f32(mlp.b_out, (d,)))
    ln = bridge.ln_final
    softcap = getattr(bridge.cfg, "output_logits_soft_cap", None)
    return ModelWeights(
        W_O=torch.stack(W_O),
        b_V=torch.stack(b_V),
        b_O=torch.stack(b_O),
        W_out=torch.stack(W_out),
        b_out=torch.stack(b_out),
        W_U=as_f32(bridge.W_U, (d, dims.d_vocab)),
        b_U=as_f32(getattr(bridge, "b_U", None), (dims.d_vocab,)),
        ln_final_w=norm_gain(getattr(ln, "w", None), d, family.norm_offset),
        ln_final_b=as_f32(getattr(ln, "b", None), (d,)),
        final_softcap=float(softcap) if softcap and softcap > 0 else None,
        **_out_norms(bridge, d, family),
        **(_lens_transform(bridge, family) if has_lens else {}),
        has_lens=has_lens,
        qk_reader=partial(_read_qk, bridge, dims, family),
        v_reader=partial(_read_value_map, bridge, dims, family),
    )


def _read_qk(bridge, dims, family, layer: int, n_tokens: int):
    from lmtt.models.qk_weights import read_qk

    return read_qk(bridge, dims, family, layer, n_tokens)


def _read_value_map(bridge, dims, family, layer: int):
    from lmtt.models.qk_weights import read_value_map

    return read_value_map(bridge, dims, family, layer)


def _out_norms(bridge, d: int, family: Family) -> dict:
    """Gains and biases [L, d] of the norms each block's write passes through."""
    if family.out_norms is None:
        return {}
    found = {}
    for kind, module in zip(("attn_out", "mlp_out"), family.out_norms, strict=True):
        norms = [getattr(block, module) for block in bridge.blocks]
        found[f"{kind}_w"] = torch.stack(
            [norm_gain(getattr(n, "w", None), d, family.norm_offset) for n in norms]
        )
        found[f"{kind}_b"] = torch.stack([as_f32(getattr(n, "b", None), (d,)) for n in norms])
    return found


def _lens_transform(bridge, family: Family) -> dict:
    """An encoder's masked-LM head transform (dense, then GELU, then ln_final), if any."""
    if not family.is_encoder:
        return {}
    params = {  # the bridge wraps each module: drop its wrapper from the names
        name.replace("._original_component", ""): p
        for name, p in bridge.original_model.named_parameters()
    }
    W = params.get("cls.predictions.transform.dense.weight")
    if W is None:
        return {}
    b = params["cls.predictions.transform.dense.bias"]
    return {"lens_dense_W": W.detach().float().cpu().T.contiguous(),
            "lens_dense_b": b.detach().float().cpu()}  # fmt: skip
