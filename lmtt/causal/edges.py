"""The causal effect of each route edge: its knockout in a real forward pass, and the
first-order (attribution-patching) estimate of that knockout from one backward pass.

A route edge (``lmtt.flow.graph``) is one term of a sum; removing it (see
``lmtt.causal.interventions``) takes that term out:

- an attention edge ``x[l-1, j] -> attn_out(l, q)`` removes from every head h of layer l its
  term A[h, q, j] v_j W_O^h (as if the pattern entry were 0);
- a residual edge into ``attn_out(l, q)`` removes the skip around the attention block, and one
  into ``resid(l, q)`` the skip around the MLP (parallel blocks: around the whole block);
- the two MLP edges through ``mlp(l, p)`` carry one part, the MLP's write: both remove it.

The effect of an edge is ``metric(clean) - metric(edge removed)``: positive when the edge
supports the metric. Its attribution estimate is the gradient of the metric at the edited
activation times the part removed (one backward pass for all edges). TransformerLens 4.3's
``attribution_patch`` scores a different graph (residual writers into later heads' q/k/v
inputs at one position, between a clean and a corrupt prompt), so lmtt computes the same
first-order estimate on its own edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float

from lmtt.causal.attention_removal import edge_attribution
from lmtt.causal.interventions import (
    AttentionEdge,
    Intervention,
    MlpWrite,
    Skip,
    point,
)
from lmtt.causal.metric import Metric, check_length
from lmtt.causal.removal import skip_attribution, skip_gradient_points
from lmtt.causal.run import DEFAULT_BATCH, run_scenarios
from lmtt.errors import InterventionError
from lmtt.flow.graph import VALUE_KINDS, Edge, RouteGraph
from lmtt.models.intervene import gradients
from lmtt.models.trace import Trace


def edge_intervention(edge: Edge) -> Intervention:
    """The removal of a route edge (the module docstring says exactly what is removed)."""
    if edge.kind == "attention":
        t = edge.target
        return Intervention(AttentionEdge(t.layer, t.pos, edge.source.pos))
    if edge.kind == "mlp":
        block = edge.source if edge.source.kind == "mlp" else edge.target
        return Intervention(MlpWrite(block.layer, block.pos))
    if edge.kind == "residual":
        t = edge.target
        return Intervention(Skip(t.layer, t.pos, "mid" if t.kind == "attn_out" else "post"))
    if edge.kind in ("key", "query"):
        raise InterventionError(
            f"A {edge.kind} edge names a part that made an attention score, not a path to "
            "remove: knock out the part's own block (or the attention edge) instead."
        )
    raise InterventionError(f"Unknown edge kind {edge.kind!r}.")


def edge_slot(removal: Intervention) -> tuple[str, tuple[int, ...]]:
    """Where a removal sits in an edge layout (:class:`lmtt.causal.faithfulness.EdgeMask`,
    :class:`lmtt.causal.scored.EdgeScores`): (field, index without the head axis)."""
    t = removal.target
    if isinstance(t, AttentionEdge):
        return "attention", (t.layer, t.query, t.key)
    if isinstance(t, MlpWrite):
        return "mlp", (t.layer, t.pos)
    return ("skip_mid" if t.into == "mid" else "skip_post"), (t.layer, t.pos)


@dataclass(frozen=True)
class EdgeEffects:
    """Per edge of ``edges``: the knockout ``effect`` (metric change when only it is removed)
    and, when computed, the ``attribution`` estimate of that effect; ``clean`` is the metric
    of the unedited run."""

    metric: Metric
    clean: float
    edges: tuple[Edge, ...]
    effect: Float[torch.Tensor, " E"] | None
    attribution: Float[torch.Tensor, " E"] | None

    def rows(self, vocab=None) -> list[dict]:
        """One dict per edge: id, kind, proximity weight, effect, attribution."""
        out = []
        for i, e in enumerate(self.edges):
            row = {"edge": e.id, "kind": e.kind, "proximity": e.weight}
            if self.effect is not None:
                row["effect"] = float(self.effect[i])
            if self.attribution is not None:
                row["attribution"] = float(self.attribution[i])
            out.append(row)
        return out


def knockout_effects(
    model,
    trace: Trace,
    edges: Sequence[Edge],
    metric: Metric,
    batch: int = DEFAULT_BATCH,
    progress: bool = False,
) -> Float[torch.Tensor, " E"]:
    """Each edge's knockout effect, one batch row per distinct removal (the two MLP edges of
    a block share one)."""
    removals = [edge_intervention(e) for e in edges]
    if not removals:
        return torch.zeros(0)
    unique = list(dict.fromkeys(removals))
    order = sorted(range(len(unique)), key=lambda i: -unique[i].target.layer)  # deep first
    values = run_scenarios(
        model, trace, [[unique[i]] for i in order], metric, batch=batch, progress=progress
    )
    by_removal = {unique[i]: float(v) for i, v in zip(order, values.tolist(), strict=True)}
    clean = float(metric(trace.logits[None]))
    return torch.tensor([clean - by_removal[r] for r in removals])


def attribution_scores(
    model, trace: Trace, edges: Sequence[Edge], metric: Metric
) -> tuple[float, Float[torch.Tensor, " E"]]:
    """(the metric, each edge's first-order knockout estimate) from one forward and one
    backward pass: gradient at the edited activation times the part the removal takes out."""
    check_length(trace.n_tokens, "Attribution")
    removals = [edge_intervention(e) for e in edges]
    if not removals:
        return float(metric(trace.logits[None])), torch.zeros(0)
    points = set()
    for r in removals:
        t = r.target
        if isinstance(t, Skip):
            points |= set(skip_gradient_points(model, t.layer))
        elif isinstance(t, AttentionEdge):
            points |= {("pattern", t.layer), ("v", t.layer), ("z", t.layer)}
        else:
            points.add(point(model, t))
    value, acts, grads = gradients(model, trace.tokens, sorted(points), metric)
    scores, by_layer = [], {}
    for r in removals:
        t = r.target
        if isinstance(t, AttentionEdge):
            per_head = by_layer.get(t.layer)
            if per_head is None:
                per_head = by_layer[t.layer] = edge_attribution(
                    acts[("pattern", t.layer)], acts[("v", t.layer)], grads[("z", t.layer)]
                )
            scores.append(float(per_head[:, t.query, t.key].sum()))
        elif isinstance(t, MlpWrite):
            key = point(model, t)
            scores.append(float(acts[key][t.pos] @ grads[key][t.pos]))
        else:
            scores.append(skip_attribution(model, t.layer, t.pos, t.into, acts, grads))
    return value, torch.tensor(scores)


def verify_edges(
    model,
    trace: Trace,
    graph: RouteGraph,
    metric: Metric,
    knockout: bool = True,
    attribution: bool = True,
    batch: int = DEFAULT_BATCH,
    progress: bool = False,
) -> EdgeEffects:
    """Every value-path edge of ``graph`` (key and query edges are not paths): its measured
    knockout effect and its attribution estimate."""
    check_length(trace.n_tokens, "Verifying edges")
    edges = tuple(e for e in graph.edges if e.kind in VALUE_KINDS)
    effect = knockout_effects(model, trace, edges, metric, batch, progress) if knockout else None
    attr = attribution_scores(model, trace, edges, metric)[1] if attribution else None
    clean = float(metric(trace.logits[None]))
    return EdgeEffects(metric, clean, tuple(edges), effect, attr)
