"""The q.k breakdown of one head at one query (BertViz's neuron view), as data."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float

from lmtt.attention.views import require_qk
from lmtt.models.trace import Trace


@dataclass(frozen=True)
class QKBreakdown:
    """Why one head at one query attends where it does."""

    layer: int
    head: int
    query_pos: int
    tokens: tuple[str, ...]
    query: Float[torch.Tensor, " d_head"]  # rotated for rotary models
    keys: Float[torch.Tensor, "T d_head"]
    products: Float[torch.Tensor, "T d_head"]  # query * key, elementwise
    dots: Float[torch.Tensor, " T"]  # products summed: q . k
    scores: Float[torch.Tensor, " T"]  # q . k * scale (+ cap, ALiBi); -inf where not attended
    weights: Float[torch.Tensor, " T"]  # softmax(scores): the attention pattern row


def qk_breakdown(trace: Trace, layer: int, head: int, query: int) -> QKBreakdown:
    """The breakdown from a trace holding ``layer``'s queries and keys."""
    require_qk(trace, "q·k breakdown")
    trace.check(layer, head, query)
    q = trace.queries(layer)[query, head]
    keys = trace.keys(layer)[:, head]
    products = keys * q
    dots = products.sum(dim=-1)
    hidden = ~trace.key_mask(layer)[query]
    scores = trace.scores_from_dots(layer, dots, head).masked_fill(hidden, float("-inf"))
    return QKBreakdown(
        layer, head, query, trace.token_strs, q, keys, products, dots, scores, scores.softmax(-1)
    )
