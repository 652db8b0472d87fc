"""Interventions as data (DESIGN.md section 7): what is replaced, and with what.

A target names one thing in the forward pass: a residual state, an attention block's write,
one head's write (its output before W_O), one attention edge, an MLP block's write, one neuron,
or one residual skip (the graph's residual edge). Its value is ``zero``, ``mean`` or ``patch``
(from a :class:`Reference`); edges and skips are only removed. A scenario is a list of
interventions applied together; many scenarios run as the rows of one batched forward pass
(:func:`run_scenarios`), each row with its own.

Exactly what removal means, per target (the part taken out of the sum it is a term of):
- ``AttentionEdge(l, q, j, heads)``: each of those heads (all by default) loses the term
  A[h, q, j] v_j of its output at q (so its write loses A[h, q, j] v_j W_O^h), as if that
  pattern entry were 0; the other weights are not renormalised.
- ``Skip(l, p, "mid")``: the attention block's output at p loses the residual it was added to
  (``mid = x + attention`` becomes ``attention``, and what the MLP reads and adds to with it);
  ``"post"`` likewise for the MLP (or, in a parallel block, both writes) and ``mid`` (or
  ``x``). Post-norm blocks subtract it from the sum their norm reads
  (``lmtt.causal.removal``).
- a write set to zero: the block's (or head's) whole write, biases included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from lmtt.errors import InterventionError, check_index
from lmtt.models.intervene import Key

VALUES = ("zero", "mean", "patch")


@dataclass(frozen=True)
class Residual:
    layer: int
    pos: int
    where: str = "post"  # pre | mid | post


@dataclass(frozen=True)
class AttentionWrite:
    layer: int
    pos: int


@dataclass(frozen=True)
class HeadWrite:
    layer: int
    head: int
    pos: int


@dataclass(frozen=True)
class AttentionEdge:
    layer: int
    query: int
    key: int
    heads: tuple[int, ...] | None = None  # None: every head


@dataclass(frozen=True)
class MlpWrite:
    layer: int
    pos: int


@dataclass(frozen=True)
class Neuron:
    layer: int
    neuron: int
    pos: int


@dataclass(frozen=True)
class Skip:
    layer: int
    pos: int
    into: str = "mid"  # mid | post


Target = Residual | AttentionWrite | HeadWrite | AttentionEdge | MlpWrite | Neuron | Skip


@dataclass(frozen=True)
class Intervention:
    target: Target
    value: str = "zero"  # zero | mean | patch (edges and skips: removed, "zero")


@dataclass(frozen=True)
class Reference:
    """Values to put in. ``mean``: per (kind, layer) a tensor without the position axis (the
    mean over a prompt set). ``patch``: per (kind, layer) [T', ...] from a counterfactual run,
    and ``positions`` mapping each clean position to its counterfactual one (None: the same)."""

    kind: str
    values: Mapping[Key, torch.Tensor]
    positions: tuple[int, ...] | None = None

    def value(self, key: Key, pos: int, index: tuple) -> torch.Tensor:
        if key not in self.values:
            raise InterventionError(f"The {self.kind} reference has no {key[0]} of layer {key[1]}.")
        v = self.values[key]
        if self.kind == "patch":
            v = v[pos if self.positions is None else self.positions[pos]]
        return v[index]


def point(model, target: Target) -> Key:
    """The (kind, layer) activation a target's edit replaces."""
    post_norm = model.family.norm_placement == "post"
    match target:
        case Residual():
            return (f"resid_{target.where}", target.layer)
        case AttentionWrite():
            return ("attn_write", target.layer)
        case HeadWrite():
            return ("z", target.layer)
        case AttentionEdge():  # taken out of the heads' outputs (lmtt.causal.attention_removal)
            return ("z", target.layer)
        case MlpWrite():
            return ("mlp_write", target.layer)
        case Neuron():
            return ("mlp_post", target.layer)
        case Skip():  # edited at two points (lmtt.causal.removal); this one is the last
            return (
                "post_sum" if post_norm and target.into == "post" else "resid_post",
                target.layer,
            )
    raise InterventionError(f"Unknown intervention target {target!r}.")


def check(model, iv: Intervention, n_tokens: int) -> None:
    """Refuse an intervention this model cannot run, in one line."""
    t, d = iv.target, model.dims
    if iv.value not in VALUES:
        raise InterventionError(f"Unknown value {iv.value!r}: use one of {', '.join(VALUES)}.")
    check_index("Layer", t.layer, d.n_layers)
    for name in ("pos", "query", "key"):
        if hasattr(t, name):
            check_index(f"Position ({name})", getattr(t, name), n_tokens)
    if isinstance(t, HeadWrite):
        check_index("Head", t.head, d.n_heads)
    if isinstance(t, AttentionEdge) and t.heads is not None:
        for h in t.heads:
            check_index("Head", h, d.n_heads)
    if isinstance(t, Neuron):
        if model.experts is not None:
            raise InterventionError("Neurons of a mixture of experts cannot be set yet.")
        check_index("Neuron", t.neuron, d.d_mlp)
    if isinstance(t, AttentionEdge | Skip) and iv.value != "zero":
        raise InterventionError("Edges and skips are removed, not replaced: use value 'zero'.")
    if isinstance(t, Skip) and t.into == "mid" and model.family.parallel:
        raise InterventionError("A parallel block has no middle residual: use into='post'.")
    if isinstance(t, AttentionEdge) and model.family.causal and t.key > t.query:
        raise InterventionError(f"Query {t.query} cannot attend to the later key {t.key}.")
