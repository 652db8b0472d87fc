"""Routes through the key and query sides of attention (K- and Q-composition).

The route graph follows the value path: what position j's residual sends to i. Why a head
looked at j is in its score (lmtt.flow.score): summed over the other side, each part of the
residual at j makes a share of the score (``k_part . q_i``), and each part at i likewise
(``q_part . k_j``). :func:`with_qk_edges` adds, for every attention edge j -> (layer l, i) of
a graph, edges of kind ``key`` from the upstream nodes at j (the embedding, an earlier
attention block's output, an earlier MLP) and of kind ``query`` from those at i into the
attention node, weighted by

    edge weight x sum over heads (head's share of the edge) x |part's term| / sum |terms|

(the proximity of the part to the score, taken from the exact split); the query edges of the
attention edges into one node are summed. Biases are left
unattributed, as in the value path. Key and query edges are not removable paths: the causal
tools (lmtt.causal) read only the value edges.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from lmtt.errors import RouteError
from lmtt.flow import graph as G
from lmtt.flow.score import residual_parts, side_vectors
from lmtt.models.trace import Trace

MAX_ATTENTION_EDGES = 512  # each needs the parts at both ends (C x d floats a position)


def _part_nodes(trace: Trace, layer: int, pos: int) -> list[G.Node | None]:
    """The graph node each part of the residual entering ``layer`` at ``pos`` belongs to
    (None for biases), in ``part_labels`` order."""
    nodes: list[G.Node | None] = [G.embed(pos)]
    parallel = trace.family.parallel
    for lo in range(layer):
        write = G.resid(lo, pos) if parallel else G.attn_out(lo, pos)
        nodes += [write] * trace.n_heads + [None, G.mlp_block(lo, pos)]
    return nodes


class _Parts:
    """One call's cache: each layer's query/key maps and each (layer, position)'s parts."""

    def __init__(self, trace: Trace):
        self.trace, self.maps, self.parts = trace, {}, {}

    def qk(self, layer: int):
        if layer not in self.maps:
            self.maps[layer] = self.trace.weights.query_key(layer, self.trace.n_tokens)
        return self.maps[layer]

    def at(self, layer: int, pos: int) -> torch.Tensor:
        if (layer, pos) not in self.parts:
            self.parts[(layer, pos)] = residual_parts(self.trace, layer, pos)
        return self.parts[(layer, pos)]


def _sides(cache: _Parts, layer: int, query: int, key: int, heads: torch.Tensor):
    """(query-side, key-side) terms per head [H, C]: each part's share of the score taken
    with the other side whole (``q_part . k_j`` and ``q_i . k_part``, unscaled)."""
    trace, qk = cache.trace, cache.qk(layer)
    at_q, at_k = cache.at(layer, query), cache.at(layer, key)
    q_rows, k_rows = [], []
    for h in heads.tolist():
        q = side_vectors(trace, layer, h, query, "q", qk, at_q)
        k = side_vectors(trace, layer, h, key, "k", qk, at_k)
        q_rows.append((q @ k.sum(0))[:-1])  # without the bias row
        k_rows.append((k @ q.sum(0))[:-1])
    return torch.stack(q_rows), torch.stack(k_rows)


def _head_shares(trace: Trace, edge: G.Edge) -> tuple[torch.Tensor, torch.Tensor]:
    """(heads, their shares of the edge) from the sizes of the edge's per-head weights (signed
    scores may be negative), else from the attention weights."""
    layer, i, j = edge.target.layer, edge.target.pos, edge.source.pos
    w = torch.tensor(edge.heads).abs() if edge.heads else trace.pattern_rows(layer, [i])[:, 0, j]
    heads = (w > 0.01 * w.sum()).nonzero().flatten()
    return heads, w[heads] / w[heads].sum().clamp_min(1e-12)


def qk_edges(trace: Trace, edge: G.Edge, cache: _Parts | None = None) -> list[G.Edge]:
    """Every key and query edge into ``edge``'s attention node (unthresholded), with the sign
    of the edge's weight."""
    cache = _Parts(trace) if cache is None else cache
    heads, share = _head_shares(trace, edge)
    if len(heads) == 0:
        return []
    layer, i, j = edge.target.layer, edge.target.pos, edge.source.pos
    out = []
    for kind, pos, terms in zip(("query", "key"), (i, j), _sides(cache, layer, i, j, heads),
                                strict=True):  # fmt: skip
        part = terms.abs() / terms.abs().sum(-1, keepdim=True).clamp_min(1e-12)  # [H, C]
        weights = edge.weight * (share[:, None] * part).sum(0)  # [C], the edge's sign
        by_node: dict[G.Node, float] = {}
        for node, w in zip(_part_nodes(trace, layer, pos), weights.tolist(), strict=True):
            if node is not None:
                by_node[node] = by_node.get(node, 0.0) + w
        out += [G.Edge(n, edge.target, kind, w) for n, w in by_node.items()]
    return out


def with_qk_edges(trace: Trace, graph: G.RouteGraph, threshold: float | None = None):
    """``graph`` with the key and query edges of each of its attention edges (weights at
    least ``threshold`` in size, default the graph's, after the query edges of attention
    edges into one node are summed) and the nodes they start from."""
    tau = graph.threshold if threshold is None else threshold
    attention = [e for e in graph.edges if e.kind == "attention"]
    if len(attention) > MAX_ATTENTION_EDGES:
        raise RouteError(
            f"The routes hold {len(attention):,} attention edges; key and query edges are drawn "
            f"for at most {MAX_ATTENTION_EDGES:,}: raise the threshold."
        )
    cache, merged = _Parts(trace), {}
    for edge in attention:
        for e in qk_edges(trace, edge, cache):
            key = (e.source, e.target, e.kind)
            merged[key] = merged.get(key, 0.0) + e.weight
    added = [G.Edge(s, t, k, w) for (s, t, k), w in merged.items() if abs(w) >= tau]
    nodes = set(graph.nodes) | {e.source for e in added}
    return replace(
        graph,
        nodes=tuple(sorted(nodes, key=G.Node.sort_key)),
        edges=graph.edges + tuple(added),
    )


def value_edges(graph: G.RouteGraph) -> tuple[G.Edge, ...]:
    """The edges of the value path (what the causal tools can remove)."""
    return tuple(e for e in graph.edges if e.kind in G.VALUE_KINDS)
