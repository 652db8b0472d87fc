"""Why a head attends: its pre-softmax score split over upstream parts (DESIGN.md section 8).

The residual entering block ``l`` at a position is a sum of parts: the embedding there, each
earlier head's write there, each earlier attention block's bias, and each earlier MLP's write
(for post-norm encoders each part passed through the later norms' frozen maps). With the input
norm's scale frozen, the query at ``i`` is affine in the residual at ``i`` and the key at ``j``
in the residual at ``j`` (rotary maps are linear), so

    score(i, j) = scale * q_i . k_j = sum over (query part a, key part b) of terms[a, b]

exactly, where the last part on each side is its "bias" (the norm's bias through W_Q / W_K,
plus b_Q / b_K). :func:`score_decomposition` returns every term; :func:`score_contrast` the
difference of two keys' terms (what the softmax compares).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float

from lmtt.errors import OutOfRangeError, check_index
from lmtt.flow import decompose as D
from lmtt.models.trace import Trace


@dataclass(frozen=True)
class ScoreDecomposition:
    """The terms of one head's score of key ``key`` at query ``query``: ``terms[a, b]`` is
    query part ``labels[a]`` (at the query) times key part ``labels[b]`` (at the key)."""

    layer: int
    head: int
    query: int
    key: int
    other: int | None  # with a second key: the terms are score(key) - score(other)
    labels: tuple[str, ...]  # shared by both sides; the last is "bias"
    terms: Float[torch.Tensor, "C C"]
    score: float  # the model's score (or score difference), from its own q and k

    @property
    def total(self) -> float:
        return float(self.terms.sum())

    def top_pairs(self, k: int = 10) -> list[tuple[str, str, float]]:
        """The ``k`` terms largest in size: (query part, key part, value)."""
        flat = self.terms.flatten()
        idx = flat.abs().topk(min(k, len(flat))).indices.tolist()
        C = len(self.labels)
        return [(self.labels[i // C], self.labels[i % C], float(flat[i])) for i in idx]

    def by_side(self) -> tuple[Float[torch.Tensor, " C"], Float[torch.Tensor, " C"]]:
        """Each query part's terms summed over key parts, and each key part's over query
        parts (how much each part makes the score, taking the other side whole)."""
        return self.terms.sum(1), self.terms.sum(0)

    def grouped(self, group: str = "layer") -> tuple[tuple[str, ...], torch.Tensor]:
        """The terms summed into groups of parts on each side: ``layer`` ("embedding",
        "L0", ...) or ``kind`` ("embedding", "head", "MLP", "bias")."""
        names = [_group(label, group) for label in self.labels]
        groups = tuple(dict.fromkeys(names))
        onehot = torch.zeros(len(groups), len(names))
        for c, name in enumerate(names):
            onehot[groups.index(name), c] = 1.0
        return groups, onehot @ self.terms @ onehot.T


def _group(label: str, group: str) -> str:
    if label in ("embedding", "bias"):
        return label
    layer, what = label.split(" ", 1)
    if group == "layer":
        return layer
    return "head" if what.startswith("H") else "MLP" if what == "MLP" else "bias"


def score_kinds(family) -> set[str]:
    """The activation kinds a trace needs for :func:`score_decomposition`."""
    kinds = family.capturable & (
        family.route_kinds | {"q", "k", "ln1_scale", "q_norm_scale", "k_norm_scale"}
    )
    return set(kinds - {"final_scale"})  # the final norm is not read here


def part_labels(trace: Trace, layer: int) -> tuple[str, ...]:
    """Names of the parts of the residual entering ``layer``, then "bias"."""
    labels = ["embedding"]
    for lo in range(layer):
        labels += [f"L{lo} H{h}" for h in range(trace.n_heads)]
        labels += [f"L{lo} attention bias", f"L{lo} MLP"]
    return (*labels, "bias")


def residual_parts(trace: Trace, layer: int, pos: int) -> Float[torch.Tensor, "C d"]:
    """The parts of the residual entering block ``layer`` at ``pos``, in ``part_labels``
    order (without "bias"); they sum to ``resid_pre(layer)[pos]``."""
    parts = trace.resid_pre(0)[pos][None]
    post = trace.family.norm_placement == "post"
    for lo in range(layer):
        if post:
            parts = _output_map(trace, lo, "attn", parts, pos)
        heads = D.head_writes_at(trace, lo, pos)  # [H, d]
        parts = torch.cat([parts, heads, D.attention_bias(trace, lo)[pos][None]])
        if post:
            parts = _output_map(trace, lo, "mlp", parts, pos)
        parts = torch.cat([parts, D.mlp_write_at(trace, lo, pos)[None]])
    return parts


def _output_map(trace: Trace, layer: int, block: str, parts: torch.Tensor, pos: int):
    """A post norm's frozen map at ``pos`` applied to each part (its bias is a new part's)."""
    return (
        D.output_direction(trace, layer, block, parts) * D.inverse_scale(trace, layer, block)[pos]
    )


def _qk_norm(trace: Trace, layer: int, head: int, pos: int, side: str, qk) -> torch.Tensor:
    """The frozen query (or key) norm of ``head`` at ``pos`` as a per-dimension factor
    [d_head]: gain / traced scale (for keys, of the key head ``head`` reads)."""
    gains = qk.q_norm_w if side == "q" else qk.k_norm_w
    h = head if side == "q" else head // (trace.n_heads // len(gains))
    scale = trace.qk_norm_scale(side, layer)
    s = scale[h, pos, 0] if trace.family.qk_norm == "head" else scale[pos, 0]
    return gains[h] / s


def side_vectors(
    trace: Trace, layer: int, head: int, pos: int, side: str, qk, parts: torch.Tensor | None = None
) -> torch.Tensor:
    """Each part's query (``side`` "q") or key ("k") vector at ``pos`` [C + 1, d_head],
    through the frozen norms and rotated; the last row is the bias."""
    W, b = (qk.W_Q, qk.b_Q) if side == "q" else (qk.W_K, qk.b_K)
    parts = residual_parts(trace, layer, pos) if parts is None else parts
    if qk.norm_w is not None:
        s = trace.ln1_scale(layer)[pos]
        parts = D.centre(trace, parts) * qk.norm_w / s
        bias = qk.norm_b @ W[head] + b[head]
    else:
        bias = b[head]
    vectors = torch.cat([parts @ W[head], bias[None]])
    if qk.q_norm_w is not None:
        vectors = vectors * _qk_norm(trace, layer, head, pos, side, qk)
    return qk.rotate(vectors, pos)


def score_decomposition(
    trace: Trace, layer: int, head: int, query: int, key: int, other: int | None = None
) -> ScoreDecomposition:
    """Every (query part, key part) term of head ``head``'s score of ``key`` at ``query``
    in block ``layer``; with ``other``, of score(key) - score(other). The score is q . k times
    the layer's scale, before any soft-cap (Gemma 2's cap * tanh(score / cap), monotone,
    comes after)."""
    trace.check(layer, head)
    query = check_index("Query position", query, trace.n_tokens, negative=True)
    visible = query + 1 if trace.family.causal else trace.n_tokens  # a decoder sees only <= i
    key = check_index("Key position", key, visible)
    other = None if other is None else check_index("Second key position", other, visible)
    seen = trace.key_mask(layer)[query]  # a sliding window hides the keys too far back
    for what, j in (("Key", key), ("Second key", other)):
        if j is not None and not seen[j]:
            window = trace.score_rule(layer).window
            raise OutOfRangeError(
                f"{what} position {j} is outside layer {layer}'s sliding window of {window} "
                f"positions: pick a key from {query - window + 1} to {query}."
            )
    qk = trace.weights.query_key(layer, trace.n_tokens)
    q = side_vectors(trace, layer, head, query, "q", qk)
    keys = [key] if other is None else [key, other]
    k = [side_vectors(trace, layer, head, j, "k", qk) for j in keys]
    scale = trace.score_rule(layer).scale
    terms = (q @ k[0].T) * scale
    model_q, model_k = trace.queries(layer)[query, head], trace.keys(layer)[:, head]
    score = float(model_q @ model_k[key]) * scale
    if other is not None:
        terms = terms - (q @ k[1].T) * scale
        score -= float(model_q @ model_k[other]) * scale
    return ScoreDecomposition(layer, head, query, key, other, part_labels(trace, layer),
                              terms, score)  # fmt: skip
