"""Knock one part out and show the prediction before and after, from a real forward pass.

The part is anything the app can select: a route edge (:func:`lmtt.causal.edges.
edge_intervention`), a head's write at a position, a neuron at a position, or a block's whole
write. :func:`knock_out` returns the metric and the top tokens at the metric's position in the
clean run and with the part removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from lmtt.causal.interventions import Intervention
from lmtt.causal.metric import Metric
from lmtt.causal.run import run_scenarios
from lmtt.flow.lens import TokenScore, top_tokens
from lmtt.models.trace import Trace


@dataclass(frozen=True)
class Knockout:
    """The prediction at ``metric.position`` before and after ``removed``."""

    removed: tuple[Intervention, ...]
    metric: Metric
    before: float
    after: float
    top_before: tuple[TokenScore, ...]
    top_after: tuple[TokenScore, ...]

    @property
    def change(self) -> float:
        return self.after - self.before

    def to_json(self, vocab=None) -> dict:
        def tokens(scores):
            return [{"token": s.token, "id": s.token_id, "prob": s.prob} for s in scores]

        return {
            "metric": self.metric.to_json(vocab),
            "before": self.before,
            "after": self.after,
            "change": self.change,
            "top_before": tokens(self.top_before),
            "top_after": tokens(self.top_after),
        }


def knock_out(
    model, trace: Trace, removed: Sequence[Intervention], metric: Metric, k: int = 10
) -> Knockout:
    """Apply ``removed`` together (one scenario) and read the prediction at the metric's
    position; the clean prediction comes from the trace."""
    pos = metric.position

    def at_target(logits: torch.Tensor) -> torch.Tensor:  # [B, T, V] -> [B, V]
        return logits[:, pos]

    after = run_scenarios(model, trace, [list(removed)], at_target)[0]  # [V]
    before = trace.logits[pos]
    at_zero = replace(metric, position=0)
    return Knockout(
        removed=tuple(removed),
        metric=metric,
        before=float(at_zero(before[None, None])),
        after=float(at_zero(after[None, None])),
        top_before=top_tokens(trace, before, k).top,
        top_after=top_tokens(trace, after, k).top,
    )
