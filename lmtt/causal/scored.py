"""Routes scored by causal effect instead of proximity: ``routes(..., score=...)``.

``proximity`` is ``lmtt.flow.graph.routes`` (how much a part resembles the whole it builds).
``attribution`` scores every edge of the model at once by the first-order estimate of its
removal's effect on the metric (one backward pass; signed). ``knockout`` measures it: the edges
of the attribution routes at a quarter of the threshold, and of the proximity routes, are each
removed in a real forward pass, and the measured effects are the scores. Either way a score is
a signed share of ``|metric(clean) - metric(every edge removed)|`` (positive: the edge works for
the metric, whichever way the span points); the walk from the prediction
keeps the edges into reached nodes whose score is at least ``threshold`` in size (a kept
attention edge also reaches its query's position: its pattern is computed there), so with a
contrast metric (a foil) the routes are what makes the target beat the foil (positive) and what
works for the foil (negative). ``read`` is proximity with each part weighted by the share of
it its reader reads, the prediction reading the metric's direction (``lmtt.flow.read``; no
forward passes). ``verified`` is proximity filtered by verification: the proximity
routes at the threshold with everything else removed, each edge then removed too, keeping those
whose removal moves the metric by at least 1% of its span, weighted by that measured share (an
edge redundant with a path outside the routes does nothing alone but counts here).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from lmtt.causal.attention_removal import edge_attribution
from lmtt.causal.edges import edge_intervention, edge_slot, knockout_effects
from lmtt.causal.faithfulness import EdgeMask, check_span, effects_within, masked_metric
from lmtt.causal.metric import MAX_CAUSAL_TOKENS, Metric, check_length
from lmtt.causal.removal import skip_gradient_points
from lmtt.errors import EmptyRoutesError, InterventionError
from lmtt.flow import graph as G
from lmtt.flow.read import Reading
from lmtt.models.intervene import gradients
from lmtt.models.trace import Trace

SCORES = ("proximity", "attribution", "knockout", "verified", "read")
MIN_EFFECT = 0.01  # a verified edge moves the metric by at least this share of its span
MAX_REMOVALS = 2048  # knockout and verified routes refuse sweeps of more removals than this


@dataclass(frozen=True)
class EdgeScores:
    """A signed score of every edge of the model, laid out as :class:`EdgeMask`: attention
    [L, H, T, T] (per head), skip around attention [L, T], MLP write [L, T], skip around the
    MLP (parallel: the block) [L, T]."""

    attention: Float[torch.Tensor, "L H T T"]
    skip_mid: Float[torch.Tensor, "L T"]
    mlp: Float[torch.Tensor, "L T"]
    skip_post: Float[torch.Tensor, "L T"]
    per_head: bool = True  # False: an attention edge's score sits on head 0, not split

    def scaled(self, factor: float) -> EdgeScores:
        tensors = (self.attention, self.skip_mid, self.mlp, self.skip_post)
        return EdgeScores(*(x * factor for x in tensors), per_head=self.per_head)


def _points(model) -> list:
    L, points = model.dims.n_layers, []
    for layer in range(L):
        points += [("pattern", layer), ("v", layer), ("z", layer), ("mlp_write", layer)]
        points += skip_gradient_points(model, layer)
    return sorted(set(points))


def attribution_all(model, trace: Trace, metric: Metric) -> EdgeScores:
    """The attribution estimate of every edge's removal, from one backward pass."""
    _, acts, grads = gradients(model, trace.tokens, _points(model), metric)
    L, T = trace.n_layers, trace.n_tokens
    att, mid, mlp, post = [], torch.zeros(L, T), torch.zeros(L, T), torch.zeros(L, T)
    parallel, post_norm = model.family.parallel, model.family.norm_placement == "post"
    for layer in range(L):
        att.append(edge_attribution(acts[("pattern", layer)], acts[("v", layer)],
                                    grads[("z", layer)]))  # fmt: skip
        key = ("mlp_write", layer)
        mlp[layer] = (acts[key] * grads[key]).sum(-1)
        x = acts[("resid_pre", layer)]
        if parallel:
            post[layer] = (grads[("resid_post", layer)] * x).sum(-1)
        elif post_norm:
            mid[layer] = (grads[("mid_sum", layer)] * x).sum(-1)
            post[layer] = (grads[("post_sum", layer)] * acts[("resid_mid", layer)]).sum(-1)
        else:
            g_post = grads[("resid_post", layer)]
            mid[layer] = ((grads[("resid_mid", layer)] + g_post) * x).sum(-1)
            post[layer] = (g_post * (x + acts[("attn_added", layer)])).sum(-1)
    return EdgeScores(torch.stack(att), mid, mlp, post)


def _span(model, trace: Trace, metric: Metric) -> float:
    L, T = trace.n_layers, trace.n_tokens
    baseline = float(masked_metric(model, trace, [EdgeMask.full(L, T, keep=False)], metric)[0])
    span = float(metric(trace.logits[None])) - baseline
    check_span(span)
    return span


def measure(model, trace: Trace, metric: Metric, candidates, progress=False) -> dict:
    """Measured knockout effect of each removal the ``candidates`` (route edges) name:
    ``{Intervention: effect}`` (the two MLP edges of a block name one removal)."""
    edges = list(dict.fromkeys(candidates))
    effects = knockout_effects(model, trace, edges, metric, progress=progress) if edges else []
    return {edge_intervention(e): float(x) for e, x in zip(edges, effects, strict=True)}


def scores_of(trace: Trace, effects: dict) -> EdgeScores:
    """The :class:`EdgeScores` of measured ``effects`` (:func:`measure`); every other edge 0."""
    L, H, T = trace.n_layers, trace.n_heads, trace.n_tokens
    zeros = (torch.zeros(L, T) for _ in range(3))
    s = EdgeScores(torch.zeros(L, H, T, T), *zeros, per_head=False)
    for removal, effect in effects.items():
        field, index = edge_slot(removal)
        if field == "attention":  # all heads removed together: the score sits on head 0
            index = (index[0], 0, *index[1:])
        getattr(s, field)[index] = effect
    return s


def walk(
    trace: Trace,
    scores: EdgeScores,
    target: int,
    threshold: float,
    label: str,
    allow_empty: bool = False,
) -> G.RouteGraph:
    """The routes of signed shares ``scores``: from the prediction at ``target``, the edges into
    reached nodes with a share of at least ``threshold`` in size."""
    L, parallel, edges = trace.n_layers, trace.family.parallel, []
    reached = {target}
    for layer in reversed(range(L)):
        below: set[int] = set()
        for p in sorted(reached):
            edges_into, src = _block_edges(scores, layer, p, threshold, parallel)
            edges += edges_into
            below |= src
        reached = below
    if not edges and not allow_empty:
        raise _no_routes(label, threshold)
    return _graph(trace, target, threshold, label, edges)


def _no_routes(label: str, threshold: float) -> EmptyRoutesError:
    return EmptyRoutesError(
        f"No edge into the prediction has a {label} share of at least {threshold}: lower the "
        "threshold.",
        max_threshold=0.0,
    )


def _graph(trace: Trace, target: int, threshold: float, label: str, edges) -> G.RouteGraph:
    nodes = {G.resid(trace.n_layers - 1, target)} | {n for e in edges for n in (e.source, e.target)}
    return G.RouteGraph(
        model=trace.model_name, tokens=trace.token_strs, target_positions=(target,),
        threshold=float(threshold), renormalizing_threshold=None, score=label,
        nodes=tuple(sorted(nodes, key=G.Node.sort_key)),
        edges=tuple(sorted(edges, key=lambda e: (e.target.sort_key(), e.source.sort_key()))),
    )  # fmt: skip


def _block_edges(s: EdgeScores, layer: int, p: int, tau: float, parallel: bool):
    """The kept edges of block ``layer`` into its output at ``p``, and the positions their
    sources sit at below."""
    out, src = [], set()
    into = G.resid(layer, p) if parallel else G.attn_out(layer, p)
    mlp, post = float(s.mlp[layer, p]), float(s.skip_post[layer, p])
    mlp_source = G.layer_input(layer, p) if parallel else G.attn_out(layer, p)
    attention_reached = parallel
    if abs(mlp) >= tau:
        out += [G.Edge(mlp_source, G.mlp_block(layer, p), "mlp", mlp),
                G.Edge(G.mlp_block(layer, p), G.resid(layer, p), "mlp", mlp)]  # fmt: skip
        attention_reached = True
    if abs(post) >= tau:
        out.append(G.Edge(mlp_source, G.resid(layer, p), "residual", post))
        attention_reached = True
    if parallel and (abs(mlp) >= tau or abs(post) >= tau):
        src.add(p)
    if not attention_reached:
        return out, src
    per_head = s.attention[layer, :, p]  # [H, T]
    total = per_head.sum(0)
    kept = (total.abs() >= tau).nonzero().flatten().tolist()
    for j in kept:
        heads = tuple(per_head[:, j].tolist()) if s.per_head else None
        out.append(G.Edge(G.layer_input(layer, j), into, "attention", float(total[j]), heads))
        src.add(j)
    if kept:
        src.add(p)  # the query: the pattern of a kept edge is computed from the input at p
    if not parallel and abs(float(s.skip_mid[layer, p])) >= tau:
        out.append(G.Edge(G.layer_input(layer, p), into, "residual", float(s.skip_mid[layer, p])))
        src.add(p)
    return out, src


def _candidates(trace: Trace, attribution: EdgeScores, target: int, threshold: float) -> list:
    """The edges knockout measures for routes at ``threshold``: those of the attribution routes
    at a quarter of it and of the proximity routes (either set may be empty)."""
    found = []
    with contextlib.suppress(EmptyRoutesError):
        found += walk(trace, attribution, target, threshold / 4, "").edges
    with contextlib.suppress(EmptyRoutesError):
        found += G.routes(trace, target, threshold).edges
    return found


def check_removals(n: int, threshold: float, limit: int = MAX_REMOVALS) -> None:
    """Refuse a sweep of more than ``limit`` removals (forward-pass rows), in one line."""
    if n > limit:
        raise InterventionError(
            f"The routes at threshold {threshold:g} need {n:,} edges knocked out, more than the "
            f"{limit:,} allowed: raise the threshold (or use the proximity score)."
        )


def _knockout(model, trace: Trace, metric: Metric, thresholds, progress: bool) -> list:
    """Knockout routes at each threshold: each from its own candidates (so a graph does not
    depend on the other thresholds), every distinct removal measured once."""
    span = abs(_span(model, trace, metric))
    attribution = attribution_all(model, trace, metric).scaled(1 / span)
    per_threshold = [_candidates(trace, attribution, metric.position, t) for t in thresholds]
    removals = {edge_intervention(e) for found in per_threshold for e in found}
    check_removals(len(removals), min(thresholds))
    union = [e for found in per_threshold for e in found]
    effects = measure(model, trace, metric, union, progress)
    out = []
    for t, found in zip(thresholds, per_threshold, strict=True):
        mine = {edge_intervention(e) for e in found}
        scores = scores_of(trace, {r: v for r, v in effects.items() if r in mine})
        out.append(walk(trace, scores.scaled(1 / span), metric.position, t, "knockout", True))
    return out


def route_graphs(
    model,
    trace: Trace,
    metric: Metric,
    thresholds: Sequence[float],
    score: str = "proximity",
    progress: bool = False,
) -> list[G.RouteGraph]:
    """The routes at each threshold (the scores computed once; a graph may have no edge)."""
    if score not in SCORES:
        raise InterventionError(f"Unknown score {score!r}: use one of {', '.join(SCORES)}.")
    if score in ("proximity", "read"):
        return _proximity_graphs(trace, metric, thresholds, score)
    check_length(trace.n_tokens, f"The {score} score")
    if score == "verified":
        return _verified(model, trace, metric, thresholds, progress)
    if score == "knockout":
        return _knockout(model, trace, metric, thresholds, progress)
    scores = attribution_all(model, trace, metric).scaled(1 / abs(_span(model, trace, metric)))
    return [walk(trace, scores, metric.position, t, score, allow_empty=True) for t in thresholds]


def _proximity_graphs(trace: Trace, metric: Metric, thresholds, score: str) -> list:
    """Proximity (or read) routes at each threshold: one full graph pruned for a short prompt
    and several thresholds, else lazy walks (the same graphs, invariant 3)."""
    reading = reading_of(metric) if score == "read" else None
    short = len(thresholds) > 1 and trace.n_tokens <= MAX_CAUSAL_TOKENS
    source = G.build_graph(trace) if short else None
    out = []
    for t in thresholds:
        try:
            if source is None:
                out.append(G.routes(trace, metric.position, t, reading=reading))
            else:
                out.append(source.prune(metric.position, t, reading))
        except EmptyRoutesError:
            out.append(_graph(trace, metric.position, t, score, []))
    return out


def reading_of(metric: Metric) -> Reading:
    """The read weights (``lmtt.flow.read``) along the direction the metric moves."""
    return Reading(token=metric.target, foil=metric.foil, logprob=metric.kind == "logprob")


def _verified(model, trace: Trace, metric: Metric, thresholds, progress: bool) -> list:
    """The proximity routes at each threshold, keeping the edges whose removal from the routes
    (everything else already removed) moves the metric by at least ``MIN_EFFECT`` of its span;
    weights: those measured shares (``lmtt.causal.faithfulness.effects_within``)."""
    out = []
    graphs = route_graphs(model, trace, metric, thresholds, "proximity")
    check_removals(sum(len({edge_intervention(e) for e in g.edges}) for g in graphs),
                   min(thresholds))  # fmt: skip
    for graph in tqdm(graphs, desc="verify routes", unit="graph", disable=not progress):
        _, within = effects_within(model, trace, graph, metric) if graph.edges else (0.0, {})
        edges = [
            replace(e, weight=v, heads=None) for e, v in within.items() if abs(v) >= MIN_EFFECT
        ]
        out.append(_graph(trace, metric.position, graph.threshold, "verified", edges))
    return out


def routes(
    model,
    trace: Trace,
    metric: Metric,
    threshold: float = 0.04,
    score: str = "proximity",
    progress: bool = False,
) -> G.RouteGraph:
    """The routes to the metric's prediction scored by ``score`` (module docstring)."""
    if score in ("proximity", "read"):
        reading = reading_of(metric) if score == "read" else None
        return G.routes(trace, metric.position, threshold, reading=reading)
    graph = route_graphs(model, trace, metric, [threshold], score, progress)[0]
    if not graph.edges:
        raise _no_routes(score, threshold)
    return graph
