"""Logit lens and token projections (DESIGN.md §4)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmtt.trace import Trace


@dataclass(frozen=True)
class TokenScore:
    token_id: int
    token: str
    logit: float
    prob: float


@dataclass(frozen=True)
class LensResult:
    """Top (most likely / most promoted) and bottom tokens of one projection."""

    top: tuple[TokenScore, ...]
    bottom: tuple[TokenScore, ...]


def final_norm(trace: Trace, resid: torch.Tensor, scale: torch.Tensor | None = None):
    """Apply the model's final norm to residual vectors [..., d].

    ``scale`` [..., 1] fixes the divisor (to project a part with the scale of the whole);
    by default each vector is normalised by its own std (LayerNorm) or RMS (RMSNorm).
    """
    w, dims = trace.weights, trace.dims
    if dims.norm == "layernorm":
        centred = resid - resid.mean(dim=-1, keepdim=True)
        if scale is None:
            scale = (centred.pow(2).mean(dim=-1, keepdim=True) + dims.norm_eps).sqrt()
        return centred / scale * w.ln_final_w + w.ln_final_b
    if scale is None:
        scale = (resid.pow(2).mean(dim=-1, keepdim=True) + dims.norm_eps).sqrt()
    return resid / scale * w.ln_final_w


def lens_logits(trace: Trace, resid: torch.Tensor, apply_norm: bool = True) -> torch.Tensor:
    """Logit lens: ``W_U @ norm_final(r) + b_U`` for residual states [..., d] -> [..., V]."""
    w = trace.weights
    x = final_norm(trace, resid) if apply_norm else resid
    return x @ w.W_U + w.b_U


def top_tokens(trace: Trace, logits: torch.Tensor, k: int = 10, softmax: bool = True):
    """The k highest and k lowest tokens of logits [V], with softmax probabilities."""
    k = max(1, min(k, logits.shape[-1]))
    probs = torch.softmax(logits, dim=-1) if softmax else torch.full_like(logits, float("nan"))

    def scores(idx: torch.Tensor) -> tuple[TokenScore, ...]:
        return tuple(
            TokenScore(int(i), trace.vocab[int(i)], float(logits[i]), float(probs[i]))
            for i in idx.tolist()
        )

    top = torch.topk(logits, k).indices
    bottom = torch.topk(-logits, k).indices
    return LensResult(top=scores(top), bottom=scores(bottom))


def residual_lens(trace: Trace, position: int = -1, k: int = 5) -> list[tuple[str, LensResult]]:
    """Logit lens at one position for every residual state: the embedding, then each block's
    output. Returns (label, result) rows, bottom layer first."""
    states = [("embed", trace.resid_pre(0)[position])]
    states += [(f"layer {i}", trace.resid_post(i)[position]) for i in range(trace.n_layers)]
    stacked = torch.stack([s for _, s in states])  # [L+1, d]
    logits = lens_logits(trace, stacked)
    return [
        (label, top_tokens(trace, row, k)) for (label, _), row in zip(states, logits, strict=True)
    ]
