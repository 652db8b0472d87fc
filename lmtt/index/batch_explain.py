"""What a batch job finds of each prompt:
``explain(model, prompts, kinds, threshold, top_neurons) -> [Explained]``.

For each prompt (text or ids), at the position whose prediction is explained (the last token; a
masked LM's first [MASK]): its routes, every head's contribution to the attention block there
and the top neurons of every MLP there. A decoder's prompts are traced in one padded pass and
walked as one stacked trace (:mod:`lmtt.flow.stacked`: every tensor operation once per batch,
not once per prompt); an encoder's one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int

from lmtt.flow import contributions as C
from lmtt.flow.graph import RouteGraph, routes_and_blocks
from lmtt.flow.stacked import stacked_routes
from lmtt.models.batched import stack_traces
from lmtt.models.trace import Trace, default_target, prepare_tokens, run_trace


@dataclass(frozen=True, eq=False)
class Explained:
    """One prompt's trace (a decoder's keeps its logits only when verifying), its logits at
    ``pos``, its routes to ``pos`` (None where none survives the threshold), every head's
    contribution to each attention block at ``pos`` and the ``k`` neurons contributing most
    to each MLP there (their contributions and indices)."""

    trace: Trace
    pos: int
    logits: Float[torch.Tensor, " V"]  # at pos
    graph: RouteGraph | None
    per_head: Float[torch.Tensor, "L H"]
    neuron_values: Float[torch.Tensor, "L k"]
    neuron_ids: Int[torch.Tensor, "L k"]


def _top_neurons(trace: Trace, positions: torch.Tensor, k: int) -> torch.return_types.topk:
    """The top ``k`` neurons of every layer's MLP at ``positions``: values and ids [P, L, k]."""
    per_layer = [C.neuron_contributions(trace, layer, positions).neurons
                 for layer in range(trace.n_layers)]  # fmt: skip
    n = torch.stack(per_layer, dim=1)  # [P, L, d_mlp]
    return n.topk(min(k, n.shape[-1]), dim=-1)


def explain(model, prompts: Sequence, kinds, threshold: float, top_neurons: int,
            all_logits: bool = False) -> list[Explained]:  # fmt: skip
    """Each prompt's :class:`Explained`, tracing ``kinds`` (the routes' kinds); a decoder's
    traces keep their logits only with ``all_logits`` (else only the targets are
    unembedded)."""
    if model.family.is_encoder:
        return [_explain_one(run_trace(model, p, capture=kinds), threshold, top_neurons)
                for p in prompts]  # fmt: skip
    tokens = [prepare_tokens(model, p) for p in prompts]
    targets = [default_target(t, model.dims.mask_token_id) for t in tokens]
    stacked = stack_traces(model, tokens, kinds, None if all_logits else targets)
    found = stacked_routes(stacked, targets, threshold)
    per_head = torch.stack([block.per_head for block in found.blocks], dim=1)  # [B, L, H]
    top = _top_neurons(stacked.trace, stacked.positions(targets), top_neurons)
    out = []
    for b, pos in enumerate(targets):
        trace = stacked.prompt(b)
        logits = trace.logits[pos] if all_logits else stacked.logits[b]
        out.append(Explained(trace, pos, logits, found.graphs[b], per_head[b], top.values[b],
                             top.indices[b]))  # fmt: skip
    return out


def _explain_one(trace: Trace, threshold: float, top_neurons: int) -> Explained:
    pos = trace.default_target()
    graph, blocks = routes_and_blocks(trace, pos, threshold)  # one walk for both
    per_head = torch.stack([block.per_head[0] for block in blocks])  # [L, H]
    top = _top_neurons(trace, torch.tensor([pos]), top_neurons)
    return Explained(trace, pos, trace.logits[pos], graph, per_head, top.values[0],
                     top.indices[0])  # fmt: skip
