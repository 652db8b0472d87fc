"""The routes of a batch's prompts in one walk: ``stacked_routes(stacked, targets, threshold)``.

A stacked trace (:func:`lmtt.models.batched.stack_traces`) lays a batch's prompts end to end,
and no part of one prompt is a part of another's (a row's keys are its own prompt's). So one
walk back from every prompt's target is every prompt's own walk, side by side: the same edges
with the same weights (to the float rounding of the batched pass; tested), at one walk's cost
in tensor operations instead of one per prompt. Each prompt's edges are then moved back to
its own positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lmtt.errors import check_index
from lmtt.flow import contributions as C
from lmtt.flow.graph import (
    RouteGraph,
    WatchedContributions,
    check_threshold,
    route_graph,
    walk,
)
from lmtt.flow.nodes import Edge, Node
from lmtt.models.batched import StackedTraces


@dataclass(frozen=True, eq=False)
class StackedRoutes:
    """Each prompt's routes to its target (None where none survives the threshold), on its
    own positions, and every layer's attention block at the targets (row b: prompt b's; its
    ``queries`` are stacked positions, its keys prompt b's)."""

    graphs: tuple[RouteGraph | None, ...]
    blocks: tuple[C.AttentionContributions, ...]


def stacked_routes(
    stacked: StackedTraces, targets: Sequence[int], threshold: float = 0.04,
    memory_budget_mb: float = C.DEFAULT_MEMORY_BUDGET_MB,
) -> StackedRoutes:  # fmt: skip
    """The routes to position ``targets[b]`` of each prompt b, and the attention blocks there
    (as :func:`lmtt.flow.graph.routes_and_blocks` gives them for one prompt)."""
    check_threshold(threshold, "threshold")
    n = stacked.lengths
    if len(targets) != len(n):
        raise ValueError(f"{len(n)} stacked prompts need {len(n)} targets (got {len(targets)}).")
    local = [check_index("Target position", t, m) for t, m in zip(targets, n, strict=True)]
    trace, where = stacked.trace, stacked.positions(local)
    provider = WatchedContributions(trace, where, memory_budget_mb)
    edges = walk(trace, provider, where.tolist(), threshold)
    S, tokens = stacked.stride, trace.token_strs
    graphs = tuple(
        route_graph(trace, tokens[b * S : b * S + stacked.lengths[b]], [local[b]], threshold,
                    None, mine, "proximity") if mine else None
        for b, mine in enumerate(_by_prompt(edges, S, len(local)))
    )  # fmt: skip
    return StackedRoutes(graphs, tuple(provider.at_watch(x) for x in range(trace.n_layers)))


def _by_prompt(edges: list[Edge], stride: int, n_prompts: int) -> list[list[Edge]]:
    """The edges of each prompt, on its own positions."""
    out: list[list[Edge]] = [[] for _ in range(n_prompts)]
    for e in edges:
        b = e.target.pos // stride
        shift = b * stride
        source, target = _moved(e.source, shift), _moved(e.target, shift)
        out[b].append(Edge(source, target, e.kind, e.weight, e.heads))
    return out


def _moved(node: Node, shift: int) -> Node:
    return node if not shift else Node(node.kind, node.layer, node.pos - shift)
