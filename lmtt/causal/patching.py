"""Activation patching from a counterfactual prompt, node by node: how far each patched state
moves the metric from the clean run towards the counterfactual run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float

from lmtt.causal.interventions import AttentionWrite, HeadWrite, Intervention, MlpWrite, Residual
from lmtt.causal.metric import Metric, check_length
from lmtt.causal.reference import patch_reference
from lmtt.causal.run import DEFAULT_BATCH, run_scenarios
from lmtt.errors import InterventionError
from lmtt.models.trace import Trace, run_trace

WHAT = ("resid", "attn", "mlp", "heads")


@dataclass(frozen=True)
class PatchingEffects:
    """The metric after patching each node (``what``: residual entering each layer, attention
    or MLP write, per layer and position [L, T]; or each head's output at every position
    [L, H]), with the clean and counterfactual metrics. ``share`` is ``(patched - clean) /
    (counterfactual - clean)``: 1 where the node alone carries the difference."""

    what: str
    metric: Metric
    clean: float
    counterfactual: float
    values: Float[torch.Tensor, "L N"]

    @property
    def share(self) -> Float[torch.Tensor, "L N"]:
        span = self.counterfactual - self.clean
        return (self.values - self.clean) / span if abs(span) > 1e-9 else self.values * 0

    def to_json(self, vocab=None) -> dict:
        return {
            "what": self.what,
            "metric": self.metric.to_json(vocab),
            "clean": self.clean,
            "counterfactual": self.counterfactual,
            "values": self.values.tolist(),
            "share": self.share.tolist(),
        }


def _targets(what: str, layers: int, n: int) -> list[list]:
    if what == "resid":
        return [[Residual(layer, p, "pre") for p in range(n)] for layer in range(layers)]
    if what == "attn":
        return [[AttentionWrite(layer, p) for p in range(n)] for layer in range(layers)]
    return [[MlpWrite(layer, p) for p in range(n)] for layer in range(layers)]


def patching_effects(
    model,
    trace: Trace,
    counterfactual: str,
    metric: Metric,
    what: str = "resid",
    positions: Sequence[int] | None = None,
    batch: int = DEFAULT_BATCH,
    progress: bool = False,
) -> PatchingEffects:
    """Patch every node of kind ``what`` from the counterfactual run, one at a time."""
    check_length(trace.n_tokens, "Patching")
    L, T, H = trace.n_layers, trace.n_tokens, trace.n_heads
    kind = {"resid": "resid_pre", "attn": "attn_write", "mlp": "mlp_write", "heads": "z"}
    if what not in kind:
        raise InterventionError(f"Unknown patching target {what!r}: use one of {', '.join(WHAT)}.")
    points = [(kind[what], layer) for layer in range(L)]
    ref = patch_reference(model, counterfactual, T, positions, points)
    if what == "heads":
        scenarios = [
            [Intervention(HeadWrite(layer, h, p), "patch") for p in range(T)]
            for layer in range(L)
            for h in range(H)
        ]
        shape = (L, H)
    else:
        targets = _targets(what, L, T)
        scenarios = [[Intervention(t, "patch")] for row in targets for t in row]
        shape = (L, T)
    values = run_scenarios(model, trace, scenarios, metric, ref, batch, progress)
    cf_metric = _counterfactual_metric(model, counterfactual, metric, positions)
    return PatchingEffects(
        what, metric, float(metric(trace.logits[None])), cf_metric, values.view(shape)
    )


def _counterfactual_metric(model, counterfactual: str, metric: Metric, positions) -> float:
    cf = run_trace(model, counterfactual, capture={"resid_pre"}, layers=[0])
    pos = metric.position if positions is None else positions[metric.position]
    moved = Metric(metric.kind, pos, metric.target, metric.foil)
    return float(moved(cf.logits[None]))
