"""Running interventions: scenarios (lists of interventions) compiled into vectorised hook
edits, one batch row per scenario, in batches bounded by memory.

A decoder's batch starts at the lowest layer any of its interventions touches, from the clean
residual entering that block (the blocks below are the same as in the clean run), so a sweep
over the edges of the upper layers costs a fraction of a full forward pass per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from lmtt.causal.attention_removal import edge_removal
from lmtt.causal.interventions import (
    AttentionEdge,
    HeadWrite,
    Intervention,
    Neuron,
    Reference,
    Skip,
    check,
    point,
)
from lmtt.causal.metric import Metric
from lmtt.causal.removal import skip_edits
from lmtt.errors import InterventionError
from lmtt.models.intervene import HookEdit, Key, run_edited
from lmtt.models.trace import Trace

DEFAULT_BATCH = 16
LOGITS_BUDGET_MB = 1024.0  # the batch's logits [B, T or 1, V] stay under this


@dataclass
class _Point:
    """The edits of one activation across a batch, as index lists."""

    rows: list[int]
    index: list[tuple]
    values: list[torch.Tensor | None]


def _index(iv: Intervention) -> tuple:
    t = iv.target
    if isinstance(t, HeadWrite):
        return (t.pos, t.head)
    if isinstance(t, Neuron):
        return (t.pos, t.neuron)
    return (t.pos,)


def _setter(key: Key, p: _Point) -> HookEdit:
    """Set the indexed entries to their values (all zero when ``values`` are None)."""
    rows = torch.tensor(p.rows)
    index = (rows, *(torch.tensor(ix) for ix in zip(*p.index, strict=True)))
    values = None if p.values[0] is None else torch.stack(p.values)

    def apply(t, seen):
        out = t.clone()
        out[index] = 0 if values is None else values.to(out)
        return out

    return HookEdit(key[0], key[1], apply)


def _edges(model, layer: int, rows, heads, queries, keys) -> HookEdit:
    """The removal of attention edges of one layer; a ``None`` head is every head."""
    r, h, q, k = [], [], [], []
    for row, hs, qi, ki in zip(rows, heads, queries, keys, strict=True):
        for head in range(model.dims.n_heads) if hs is None else hs:
            r.append(row), h.append(head), q.append(qi), k.append(ki)
    return edge_removal(model, layer, r, h, q, k)


def _skip_keeps(model, n_rows: int, n_tokens: int, removed: dict) -> list[HookEdit]:
    """Skip edits from the removed (row, position) pairs per (layer, into)."""
    edits = []
    for layer in sorted({layer for layer, _ in removed}):
        keeps = {}
        for into in ("mid", "post"):
            pairs = removed.get((layer, into))
            if pairs:
                keep = torch.ones(n_rows, n_tokens)
                rows, pos = zip(*pairs, strict=True)
                keep[list(rows), list(pos)] = 0
                keeps[into] = keep
        edits += skip_edits(model, layer, keeps.get("mid"), keeps.get("post"))
    return edits


def compile_edits(
    model,
    scenarios: Sequence[Sequence[Intervention]],
    n_tokens: int,
    reference: Reference | None = None,
) -> list[HookEdit]:
    """The hook edits applying scenario ``b`` to batch row ``b``, vectorised per activation."""
    sets: dict[tuple[Key, bool], _Point] = {}
    edges: dict[int, tuple[list, list, list, list]] = {}
    skips: dict[tuple[int, str], set] = {}
    for row, scenario in enumerate(scenarios):
        for iv in scenario:
            key, t = point(model, iv.target), iv.target
            if isinstance(t, AttentionEdge):
                lists = edges.setdefault(t.layer, ([], [], [], []))
                for lst, x in zip(lists, (row, t.heads, t.query, t.key), strict=True):
                    lst.append(x)
            elif isinstance(t, Skip):
                skips.setdefault((t.layer, t.into), set()).add((row, t.pos))
            else:
                p = sets.setdefault((key, iv.value == "zero"), _Point([], [], []))
                p.rows.append(row), p.index.append(_index(iv))
                p.values.append(_value(iv, key, reference))
    out = [_setter(key, p) for (key, _), p in sets.items()]
    out += [_edges(model, layer, *lists) for layer, lists in edges.items()]
    out += _skip_keeps(model, len(scenarios), n_tokens, skips)
    return out


def _value(iv: Intervention, key: Key, reference: Reference | None) -> torch.Tensor | None:
    if iv.value == "zero":
        return None
    if reference is None or reference.kind != iv.value:
        raise InterventionError(
            f"A {iv.value} intervention needs a {iv.value} reference (mean values from a prompt "
            "set, or a counterfactual prompt's run)."
        )
    index = _index(iv)
    return reference.value(key, index[0], index[1:])


def batch_size(trace: Trace, batch: int = DEFAULT_BATCH, n_positions: int | None = None) -> int:
    """Rows per forward pass: ``batch``, fewer when the logits (of ``n_positions``, default
    every position) would pass the budget."""
    n = trace.n_tokens if n_positions is None else n_positions
    row_bytes = n * trace.dims.d_vocab * 4 * 2  # the logits and their softmax
    return max(1, min(batch, int(LOGITS_BUDGET_MB * 2**20 // row_bytes)))


def _start_layer(scenarios: Sequence[Sequence[Intervention]]) -> int:
    layers = [iv.target.layer for s in scenarios for iv in s]
    return min(layers) if layers else 0


def run_scenarios(
    model,
    trace: Trace,
    scenarios: Sequence[Sequence[Intervention]],
    metric: Metric,
    reference: Reference | None = None,
    batch: int = DEFAULT_BATCH,
    progress: bool = False,
) -> Float[torch.Tensor, " S"]:
    """The metric after each scenario (a list of interventions applied together) on the
    trace's prompt: one batch row per scenario. ``metric`` is a :class:`Metric` (then only its
    position is unembedded) or any function of the logits [B, T, V] returning [B, ...]."""
    for scenario in scenarios:
        for iv in scenario:
            check(model, iv, trace.n_tokens)
    size = batch_size(trace, batch, 1 if isinstance(metric, Metric) else None)
    chunks = [scenarios[i : i + size] for i in range(0, len(scenarios), size)]
    values = []
    for chunk in tqdm(chunks, desc="interventions", unit="batch", disable=not progress):
        values.append(_run_chunk(model, trace, chunk, metric, reference))
    return torch.cat(values) if values else torch.empty(0)


def _run_chunk(model, trace, chunk, metric, reference) -> torch.Tensor:
    edits = compile_edits(model, chunk, trace.n_tokens, reference)
    # The bridge's start_at_layer does not reproduce an encoder's pass: encoders start at 0.
    start = 0 if trace.family.is_encoder else _start_layer(chunk)
    if start > 0 and ("resid_pre", start) in trace.activations:
        inputs = trace.resid_pre(start).unsqueeze(0).expand(len(chunk), -1, -1)
    else:
        inputs = trace.tokens.unsqueeze(0).expand(len(chunk), -1)
    if isinstance(metric, Metric):  # unembed only the metric's position
        logits, _ = run_edited(model, inputs, edits, start, positions=[metric.position])
        return metric.at_first(logits)
    logits, _ = run_edited(model, inputs, edits, start_layer=start)
    return metric(logits)
