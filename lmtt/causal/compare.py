"""Comparing edge scores: rank correlation, and which edges have a measured effect."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float

from lmtt.causal.edges import EdgeEffects


def ranks(x: Float[torch.Tensor, " N"]) -> Float[torch.Tensor, " N"]:
    """Ranks 1..N, ties sharing their mean rank."""
    order = torch.argsort(x, stable=True)
    r = torch.empty(len(x), dtype=torch.float64)
    r[order] = torch.arange(1, len(x) + 1, dtype=torch.float64)
    values, inverse = torch.unique(x, return_inverse=True)
    sums = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, r)
    counts = torch.bincount(inverse, minlength=len(values)).double()
    return (sums / counts)[inverse]


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation (nan with fewer than 3 items or a constant side)."""
    if len(a) < 3:
        return float("nan")
    ra, rb = ranks(a.double()), ranks(b.double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(ra.norm() * rb.norm())
    return float((ra @ rb) / denominator) if denominator > 0 else float("nan")


def measured(effects: EdgeEffects, span: float, min_share: float) -> Bool[torch.Tensor, " E"]:
    """Edges whose knockout moves the metric by at least ``min_share`` of ``span`` (the clean
    metric minus the fully ablated baseline)."""
    return effects.effect.abs() >= min_share * abs(span)


@dataclass(frozen=True)
class Agreement:
    """How the edge scores agree with the knockout effects over one graph's edges."""

    n_edges: int
    without_effect: int  # edges whose knockout moves the metric by less than min_share
    min_share: float
    weight_vs_effect: float  # Spearman(|edge weight|, |effect|): the graph's own score
    attribution_vs_effect: float | None  # Spearman(|attribution|, |effect|)
    attribution_signed: float | None  # Spearman(attribution, effect)

    def to_json(self) -> dict:
        """As JSON values: an undefined correlation (fewer than 3 edges) is null."""
        return {k: None if isinstance(v, float) and v != v else v for k, v in self.__dict__.items()}


def agreement(effects: EdgeEffects, span: float, min_share: float = 0.01) -> Agreement:
    weights = torch.tensor([abs(e.weight) for e in effects.edges])
    size = effects.effect.abs()
    attribution = effects.attribution
    return Agreement(
        n_edges=len(effects.edges),
        without_effect=int((~measured(effects, span, min_share)).sum()),
        min_share=min_share,
        weight_vs_effect=spearman(weights, size),
        attribution_vs_effect=None if attribution is None else spearman(attribution.abs(), size),
        attribution_signed=None if attribution is None else spearman(attribution, effects.effect),
    )
