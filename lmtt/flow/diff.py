"""Two prompts' routes compared edge by edge: ``diff_routes(a, b)``.

The graphs are aligned on their targets (the predictions explained, by default the last
tokens): a position of B is shifted by A's target minus B's, so the same offset from the
prediction lines up (for a clean prompt and a counterfactual of the same length, every
position lines up). An edge is "only in A", "only in B", or in both with a weight change; B's
edges that fall outside A's positions cannot be drawn on them and are listed apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lmtt.errors import RouteError
from lmtt.flow.graph import Edge, Node, RouteGraph


@dataclass(frozen=True)
class GraphDiff:
    a: RouteGraph
    b: RouteGraph
    shift: int  # added to B's positions
    only_a: tuple[Edge, ...]
    only_b: tuple[Edge, ...]  # on A's positions
    both: tuple[tuple[Edge, Edge], ...]  # (A's edge, B's edge), the same ends and kind
    outside: tuple[Edge, ...]  # B's edges before A's first token

    def changes(self, k: int | None = None) -> list[tuple[Edge, float, float]]:
        """Shared edges by the size of their weight change: (A's edge, weight in A, in B)."""
        rows = [(ea, ea.weight, eb.weight) for ea, eb in self.both]
        rows.sort(key=lambda r: abs(r[2] - r[1]), reverse=True)
        return rows if k is None else rows[:k]

    def graph(self) -> RouteGraph:
        """One graph on A's tokens whose edge weights are B's minus A's (an edge only in A
        has its weight negated; one only in B keeps its own): positive where B leans on
        the edge more."""
        edges = [replace(e, weight=-e.weight, heads=None) for e in self.only_a]
        edges += [replace(e, heads=None) for e in self.only_b]
        edges += [replace(ea, weight=eb.weight - ea.weight, heads=None) for ea, eb in self.both]
        nodes = {n for e in edges for n in (e.source, e.target)}
        nodes |= set(self.a.nodes)
        tokens = tuple(_label(self, p) for p in range(len(self.a.tokens)))
        return RouteGraph(
            model=self.a.model, tokens=tokens, target_positions=self.a.target_positions,
            threshold=self.a.threshold, renormalizing_threshold=None, score="diff",
            nodes=tuple(sorted(nodes, key=Node.sort_key)),
            edges=tuple(sorted(edges, key=lambda e: (e.target.sort_key(), e.source.sort_key()))),
        )  # fmt: skip


def _label(d: GraphDiff, pos: int) -> str:
    """A's token at ``pos``, with B's after a bar where they differ."""
    token_a = d.a.tokens[pos]
    pos_b = pos - d.shift
    if 0 <= pos_b < len(d.b.tokens) and d.b.tokens[pos_b] != token_a:
        return f"{token_a}|{d.b.tokens[pos_b]}"
    return token_a


def _moved(node: Node, shift: int) -> Node:
    return replace(node, pos=node.pos + shift)


def diff_routes(a: RouteGraph, b: RouteGraph) -> GraphDiff:
    """Compare the routes ``a`` and ``b`` (each to one prediction, at its last position)."""
    if len(a.target_positions) != 1 or len(b.target_positions) != 1:
        raise RouteError("A diff compares the routes to one prediction each: pass one target.")
    shift = a.target_positions[0] - b.target_positions[0]
    moved, outside = {}, []
    for e in b.edges:
        src, dst = _moved(e.source, shift), _moved(e.target, shift)
        if min(src.pos, dst.pos) < 0 or max(src.pos, dst.pos) >= len(a.tokens):
            outside.append(e)
            continue
        moved[(src, dst, e.kind)] = replace(e, source=src, target=dst)
    mine = {(e.source, e.target, e.kind): e for e in a.edges}
    both = tuple((mine[k], moved[k]) for k in mine if k in moved)
    only_a = tuple(e for k, e in mine.items() if k not in moved)
    only_b = tuple(e for k, e in moved.items() if k not in mine)
    return GraphDiff(a, b, shift, only_a, only_b, both, tuple(outside))
