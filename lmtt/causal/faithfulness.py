"""How much of a prediction a route graph explains (DESIGN.md section 7).

Every term the routes are made of is an edge of the model's full graph: each attention edge
(layer l, query q <- key j, all heads), each skip around an attention block or an MLP, each
MLP's write, at every position. An :class:`EdgeMask` keeps some of them and removes the rest
(removal as in ``lmtt.causal.interventions``), in one real forward pass per mask.

- completeness of graph G: ``(m(only G) - m(nothing)) / (m(clean) - m(nothing))``, the share of
  the metric (above the fully ablated baseline) kept when everything outside G is removed;
- its complement: ``(m(clean) - m(all but G)) / (m(clean) - m(nothing))``, the share lost when
  only G is removed.
Both over a list of thresholds give curves; their areas are the trapezoid means over the
thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from jaxtyping import Bool, Float

from lmtt.causal.attention_removal import masked_attention
from lmtt.causal.metric import Metric, check_length
from lmtt.causal.removal import skip_edits
from lmtt.causal.run import batch_size
from lmtt.errors import InterventionError
from lmtt.flow.graph import VALUE_KINDS, Edge, RouteGraph
from lmtt.models.intervene import HookEdit, run_edited
from lmtt.models.trace import Trace

CURVE = (0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3)  # default thresholds


@dataclass(frozen=True)
class EdgeMask:
    """The edges kept (True) per layer: attention [L, T, T] (query, key), the skip around the
    attention block [L, T] (unused by parallel blocks), the MLP's write [L, T] and the skip
    around the MLP (parallel: around the block) [L, T]."""

    attention: Bool[torch.Tensor, "L T T"]
    skip_mid: Bool[torch.Tensor, "L T"]
    mlp: Bool[torch.Tensor, "L T"]
    skip_post: Bool[torch.Tensor, "L T"]

    @classmethod
    def full(cls, n_layers: int, n_tokens: int, keep: bool = True) -> EdgeMask:
        L, T = n_layers, n_tokens
        return cls(
            torch.full((L, T, T), keep),
            torch.full((L, T), keep),
            torch.full((L, T), keep),
            torch.full((L, T), keep),
        )

    @classmethod
    def of_graph(cls, graph: RouteGraph, n_layers: int) -> EdgeMask:
        """Exactly the value-path edges of ``graph`` (key and query edges are not paths)."""
        from lmtt.causal.edges import edge_intervention, edge_slot

        m = cls.full(n_layers, len(graph.tokens), keep=False)
        for e in graph.edges:
            if e.kind in VALUE_KINDS:
                field, index = edge_slot(edge_intervention(e))
                getattr(m, field)[index] = True
        return m

    def without(self, field: str, index: tuple) -> EdgeMask:
        """A copy with one edge (``lmtt.causal.edges.edge_slot``) removed too."""
        fields = ("attention", "skip_mid", "mlp", "skip_post")
        copy = EdgeMask(*(getattr(self, f).clone() for f in fields))
        getattr(copy, field)[index] = False
        return copy

    def inverted(self) -> EdgeMask:
        return EdgeMask(~self.attention, ~self.skip_mid, ~self.mlp, ~self.skip_post)


def _stack(masks: Sequence[EdgeMask], field: str) -> torch.Tensor:
    return torch.stack([getattr(m, field) for m in masks])


def mask_edits(model, masks: Sequence[EdgeMask]) -> list[HookEdit]:
    """Hook edits removing, in batch row b, every edge ``masks[b]`` does not keep."""
    att, mlp = _stack(masks, "attention"), _stack(masks, "mlp")
    skips = {"mid": _stack(masks, "skip_mid"), "post": _stack(masks, "skip_post")}
    edits = []
    for layer in range(model.dims.n_layers):
        edits.append(masked_attention(model, layer, att[:, layer]))
        keep_mlp = mlp[:, layer, :, None].float()
        edits.append(HookEdit("mlp_write", layer, lambda t, s, k=keep_mlp: t * k.to(t)))
        k1 = None if model.family.parallel else skips["mid"][:, layer].float()
        edits += skip_edits(model, layer, k1, skips["post"][:, layer].float())
    return edits


def masked_metric(
    model, trace: Trace, masks: Sequence[EdgeMask], metric: Metric
) -> Float[torch.Tensor, " B"]:
    """The metric with only each mask's edges kept (one batch row per mask)."""
    size, out = batch_size(trace, n_positions=1), []
    for i in range(0, len(masks), size):
        chunk = masks[i : i + size]
        tokens = trace.tokens.unsqueeze(0).expand(len(chunk), -1)
        edits = mask_edits(model, chunk)
        logits, _ = run_edited(model, tokens, edits, positions=[metric.position])
        out.append(metric.at_first(logits))
    return torch.cat(out)


@dataclass(frozen=True)
class Faithfulness:
    """Completeness and its complement of the graphs at ``thresholds`` (DESIGN.md section 7),
    with the metric of the clean run and of the fully ablated baseline."""

    metric: Metric
    clean: float
    baseline: float
    thresholds: tuple[float, ...]
    n_edges: tuple[int, ...]
    completeness: tuple[float, ...]
    complement: tuple[float, ...] | None

    def without_first(self) -> Faithfulness:
        """The same without the first graph (e.g. the routes shown, ahead of a curve's)."""
        return replace(
            self, thresholds=self.thresholds[1:], n_edges=self.n_edges[1:],
            completeness=self.completeness[1:],
            complement=None if self.complement is None else self.complement[1:],
        )  # fmt: skip

    @property
    def completeness_area(self) -> float:
        return _area(self.thresholds, self.completeness)

    @property
    def complement_area(self) -> float | None:
        return None if self.complement is None else _area(self.thresholds, self.complement)

    def to_json(self, vocab=None) -> dict:
        return {
            "metric": self.metric.to_json(vocab),
            "clean": self.clean,
            "baseline": self.baseline,
            "thresholds": list(self.thresholds),
            "n_edges": list(self.n_edges),
            "completeness": list(self.completeness),
            "complement": None if self.complement is None else list(self.complement),
            "completeness_area": self.completeness_area,
            "complement_area": self.complement_area,
        }


def _area(x: Sequence[float], y: Sequence[float]) -> float:
    if len(x) < 2:
        return float(y[0]) if y else float("nan")
    order = sorted(range(len(x)), key=x.__getitem__)
    xs, ys = [x[i] for i in order], [y[i] for i in order]
    area = sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1))
    return area / (xs[-1] - xs[0])


def check_span(span: float) -> None:
    """Refuse a metric that removing every edge does not move (shares of it are undefined)."""
    if abs(span) < 1e-9:
        raise InterventionError(
            "The metric is the same with every edge removed as in the clean run, so shares of "
            "it are undefined: pick another metric or target."
        )


def faithfulness(
    model,
    trace: Trace,
    graphs: Sequence[RouteGraph],
    metric: Metric,
    complement: bool = True,
) -> Faithfulness:
    """Completeness (and its complement) of each graph, in one batched pass: a row per graph
    (two with the complement) and one for the fully ablated baseline."""
    check_length(trace.n_tokens, "Completeness")
    L, T = trace.n_layers, trace.n_tokens
    kept = [EdgeMask.of_graph(g, L) for g in graphs]
    masks = kept + ([m.inverted() for m in kept] if complement else [])
    values = masked_metric(model, trace, [*masks, EdgeMask.full(L, T, keep=False)], metric)
    clean, base = float(metric(trace.logits[None])), float(values[-1])
    span = clean - base
    check_span(span)
    n = len(graphs)
    share = [(float(v) - base) / span for v in values[:n]]
    lost = [(clean - float(v)) / span for v in values[n : 2 * n]] if complement else None
    return Faithfulness(
        metric,
        clean,
        base,
        tuple(g.threshold for g in graphs),
        tuple(len(g.edges) for g in graphs),
        tuple(share),
        None if lost is None else tuple(lost),
    )


def effects_within(
    model, trace: Trace, graph: RouteGraph, metric: Metric
) -> tuple[float, dict[Edge, float]]:
    """(completeness of ``graph``, each edge's effect within it): with only the graph's edges
    kept, how much of the metric's span (its size: positive means the edge works for the
    metric) removing that edge too costs (one batch row per removal; the two MLP edges of a
    block are one removal). An edge that is redundant with a path outside the graph has no
    effect alone but can have one here."""
    from lmtt.causal.edges import edge_intervention, edge_slot

    L, T = trace.n_layers, trace.n_tokens
    graph = replace(graph, edges=tuple(e for e in graph.edges if e.kind in VALUE_KINDS))
    removals = [edge_intervention(e) for e in graph.edges]
    unique = list(dict.fromkeys(removals))
    kept_mask = EdgeMask.of_graph(graph, L)
    ends = masked_metric(model, trace, [kept_mask, EdgeMask.full(L, T, keep=False)], metric)
    clean, kept, base = float(metric(trace.logits[None])), float(ends[0]), float(ends[1])
    span = clean - base
    check_span(span)
    values, size = [], batch_size(trace, n_positions=1)
    for i in range(0, len(unique), size):  # the masks of one batch at a time: L T T bytes each
        masks = [kept_mask.without(*edge_slot(r)) for r in unique[i : i + size]]
        values += masked_metric(model, trace, masks, metric).tolist()
    by_removal = {r: (kept - v) / abs(span) for r, v in zip(unique, values, strict=True)}
    within = {e: by_removal[r] for e, r in zip(graph.edges, removals, strict=True)}
    return (kept - base) / span, within
