"""Logit lens and token projections (DESIGN.md §4).

The lens of a residual state is what the model's head makes of it: the final norm and the
unembedding (then the final-logit soft-cap, where the model has one), or, for an encoder, its
masked-LM head (dense, GELU, norm, decoder). The tokens a *part* promotes are its direct
effect: linear through the final norm with the scale of the whole it is part of (before any
soft-cap, which keeps the order); for an encoder, whose head is not linear, the change of the
head's logits when the part is taken out of the final state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmtt.errors import LmttError, check_index
from lmtt.flow import decompose
from lmtt.flow.contributions import neuron_contributions
from lmtt.flow.decompose import head_outputs
from lmtt.models.trace import Trace


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
    """Logit lens: the model's head applied to residual states [..., d] -> [..., V]
    (``W_U @ norm_final(r) + b_U`` for a decoder, soft-capped where the model is)."""
    w = trace.weights
    if not w.has_lens:
        raise LmttError(
            f"{trace.model_name} has no masked-LM head, so its residual states have no logit "
            "lens: use a model saved as *ForMaskedLM (the routes work without one)."
        )
    if w.lens_dense_W is not None:  # a masked-LM head's transform
        resid = torch.nn.functional.gelu(resid @ w.lens_dense_W + w.lens_dense_b)
    x = final_norm(trace, resid) if apply_norm else resid
    logits = x @ w.W_U + w.b_U
    if w.final_softcap is not None:
        logits = w.final_softcap * torch.tanh(logits / w.final_softcap)
    return logits


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


def component_logits(trace: Trace, vecs: torch.Tensor, position: int) -> torch.Tensor:
    """Direct effect on the logits of parts vecs [..., d] written into the residual at
    ``position``: through the final norm with that position's scale (the norm's bias belongs
    to the whole, so it is left out) -> [..., V]. An encoder's head is not linear: there the
    effect is the change of its logits when the part is taken out of the final state."""
    w, dims = trace.weights, trace.dims
    if w.lens_dense_W is not None or not w.has_lens:
        final = trace.resid_post(trace.n_layers - 1)[position]
        return lens_logits(trace, final) - lens_logits(trace, final - vecs)
    scale = trace.final_scale()[position]  # [1]
    if dims.norm == "layernorm":
        vecs = vecs - vecs.mean(dim=-1, keepdim=True)
    return (vecs / scale * w.ln_final_w) @ w.W_U


def promoted_suppressed(trace: Trace, vec: torch.Tensor, position: int, k: int = 10):
    """Tokens a written vector [d] promotes (top) and suppresses (bottom); logits are its
    direct effect, prob is not meaningful for a part and is NaN."""
    return top_tokens(trace, component_logits(trace, vec, position), k, softmax=False)


def node_state(trace: Trace, node) -> torch.Tensor:
    """The residual vector [d] of a graph node; for an MLP node, the block's write (its part
    of the block output: out minus the MLP's residual part)."""
    if node.kind == "embed":
        return trace.resid_pre(0)[node.pos]
    if node.kind == "attn_out":
        return trace.resid_mid(node.layer)[node.pos]
    out = trace.resid_post(node.layer)[node.pos]
    if node.kind == "resid":
        return out
    return out - decompose.mlp_residual(trace, node.layer)[node.pos]


def node_lens(trace: Trace, node, k: int = 10) -> LensResult:
    """Logit lens of a node: residual states through the final norm; an MLP node's write as
    promoted/suppressed tokens."""
    if node.kind == "mlp":
        return promoted_suppressed(trace, node_state(trace, node), node.pos, k)
    return top_tokens(trace, lens_logits(trace, node_state(trace, node)), k)


def head_tokens(trace: Trace, layer: int, head: int, position: int, k: int = 10) -> LensResult:
    """Tokens promoted and suppressed by what ``head`` writes at ``position``."""
    check_index("Head", head, trace.n_heads)
    out = head_outputs(trace, layer, [position])[0, head]  # [d]
    return promoted_suppressed(trace, out, position, k)


@dataclass(frozen=True)
class NeuronView:
    neuron: int
    contribution: float  # section 2 share of out[layer, position]
    activation: float
    tokens: LensResult  # promoted (top) and suppressed (bottom) by a * W_out[n]


def top_neurons(trace: Trace, layer: int, position: int, n: int = 10, k: int = 10):
    """The ``n`` neurons of MLP ``layer`` contributing most at ``position``, with their tokens."""
    nc = neuron_contributions(trace, layer, [position])
    best = torch.topk(nc.neurons[0], min(n, nc.neurons.shape[1]))
    acts = trace.mlp_post(layer)[position]
    writes = decompose.neuron_outputs(trace, layer, [position])[0, best.indices]  # [n, d]
    logits = component_logits(trace, writes, position)  # [n, V]
    return [
        NeuronView(idx, c, float(acts[idx]), top_tokens(trace, row, k, softmax=False))
        for idx, c, row in zip(best.indices.tolist(), best.values.tolist(), logits, strict=True)
    ]


def previous_state(trace: Trace, node) -> torch.Tensor | None:
    """The residual state before the block that produced ``node`` (None for the embedding)."""
    if node.kind == "embed":
        return None
    if node.kind == "resid" and not trace.family.parallel:
        return trace.resid_mid(node.layer)[node.pos]
    return trace.resid_pre(node.layer)[node.pos]


@dataclass(frozen=True)
class RankedToken:
    score: TokenScore
    rank: int  # 0-based rank in this state
    rank_change: int | None  # ranks gained since the state before the block (None: no previous)


def lens_with_rank_change(trace: Trace, node, k: int = 10, apply_norm: bool = True):
    """Top-k tokens of a residual node's logit lens, each with how many ranks it gained (+) or
    lost (-) relative to the residual state before that block."""
    logits = lens_logits(trace, node_state(trace, node), apply_norm)
    result = top_tokens(trace, logits, k)
    prev = previous_state(trace, node)
    prev_logits = None if prev is None else lens_logits(trace, prev, apply_norm)
    out = []
    for rank, s in enumerate(result.top):
        change = None
        if prev_logits is not None:
            change = int((prev_logits > prev_logits[s.token_id]).sum()) - rank
        out.append(RankedToken(s, rank, change))
    return out


def token_rank_by_layer(trace: Trace, position: int, token_id: int, apply_norm: bool = True):
    """Rank (0 = top) of ``token_id`` in the logit lens of every residual state at
    ``position``: [("embed", r), ("after attn L0", r), ("L0", r), ...]."""
    labels = ["embed"]
    states = [trace.resid_pre(0)[position]]
    for layer in range(trace.n_layers):
        if not trace.family.parallel:  # a parallel block has no state between its halves
            labels.append(f"L{layer} attn")
            states.append(trace.resid_mid(layer)[position])
        labels.append(f"L{layer}")
        states.append(trace.resid_post(layer)[position])
    logits = lens_logits(trace, torch.stack(states), apply_norm)  # [S, V]
    ranks = (logits > logits[:, token_id : token_id + 1]).sum(dim=-1)
    return list(zip(labels, ranks.tolist(), strict=True))
