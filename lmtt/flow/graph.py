"""The importance graph and the routes to a prediction (DESIGN.md §3).

``routes(trace, targets, threshold)`` walks back from ``Resid(L-1, target)`` and computes
contributions only for the nodes it reaches (lazy). ``build_graph(trace)`` computes every
target's contributions (tensors, in query chunks) and ``FullGraph.prune`` walks it the same way,
so the two give identical routes. A :class:`RouteGraph` converts to networkx and to the public
JSON format, and loads back from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from lmtt.errors import EmptyRoutesError, LmttError, RouteError, check_index
from lmtt.flow import contributions as C
from lmtt.flow.nodes import (  # noqa: F401 (the graph's vocabulary, re-exported)
    EDGE_KINDS,
    NODE_KINDS,
    VALUE_KINDS,
    Edge,
    Node,
    attn_out,
    embed,
    layer_input,
    mlp_block,
    resid,
)
from lmtt.flow.read import Reading, ReadWalk
from lmtt.models.trace import Trace

SCHEMA_VERSION = 2  # 2 added the "key" and "query" edge kinds; version 1 files still load
READS = (1, 2)


@dataclass(frozen=True)
class RouteGraph:
    """The routes to the predictions at ``target_positions`` (the pruned graph)."""

    model: str
    tokens: tuple[str, ...]
    target_positions: tuple[int, ...]
    threshold: float
    renormalizing_threshold: float | None
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    # What the edge weights are: "proximity" or "read" (shares of each node, >= 0), or signed
    # shares of the metric from lmtt.causal ("attribution", "knockout", "verified")
    score: str = "proximity"

    @property
    def signed(self) -> bool:
        """Are the weights signed shares of a metric (not proximity or read shares, >= 0)?"""
        return self.score not in ("proximity", "read")

    def to_json(self) -> dict:
        from lmtt import __version__

        return {
            "schema_version": SCHEMA_VERSION,
            "lmtt_version": __version__,
            "model": self.model,
            "tokens": list(self.tokens),
            "target_positions": list(self.target_positions),
            "threshold": self.threshold,
            "renormalizing_threshold": self.renormalizing_threshold,
            "score": self.score,
            "nodes": [n.to_json() for n in self.nodes],
            "edges": [e.to_json() for e in self.edges],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False)

    def find(self, element_id: str) -> Node | Edge | None:
        """The node or edge of this graph with that id (None when it is not on the routes);
        ValueError for a malformed id."""
        if ">" in element_id:
            source, target, kind = Edge.parse_id(element_id)
            key = (source, target, kind)
            return next((e for e in self.edges if (e.source, e.target, e.kind) == key), None)
        node = Node.from_id(element_id)
        return node if node in set(self.nodes) else None

    @classmethod
    def from_json(cls, d: dict | str) -> RouteGraph:
        d = json.loads(d) if isinstance(d, str) else d
        if d.get("schema_version") not in READS:
            raise LmttError(
                f"Graph JSON has schema_version {d.get('schema_version')!r}; this lmtt reads "
                f"versions {', '.join(map(str, READS))}. Re-export the graph with this lmtt "
                "version."
            )
        rt = d.get("renormalizing_threshold")
        return cls(
            model=d["model"],
            tokens=tuple(d["tokens"]),
            target_positions=tuple(d["target_positions"]),
            threshold=float(d["threshold"]),
            renormalizing_threshold=None if rt is None else float(rt),
            nodes=tuple(Node.from_json(n) for n in d["nodes"]),
            edges=tuple(Edge.from_json(e) for e in d["edges"]),
            score=str(d.get("score", "proximity")),
        )

    def to_networkx(self):
        """A ``networkx.DiGraph``. The self-attention and residual edges into one attention
        node share a (source, target) pair: they become one edge whose ``weight`` is their sum
        and whose ``kinds`` maps each kind to its weight (key and query edges are listed in
        ``kinds`` but not added to ``weight``)."""
        import networkx as nx

        g = nx.DiGraph(model=self.model, tokens=list(self.tokens), threshold=self.threshold)
        for n in self.nodes:
            g.add_node(n, kind=n.kind, layer=n.layer, pos=n.pos, token=self.tokens[n.pos])
        for e in self.edges:
            value = e.weight if e.kind in VALUE_KINDS else 0.0  # key/query edges: not a path
            if g.has_edge(e.source, e.target):
                data = g.edges[e.source, e.target]
                data["weight"] += value
                data["kinds"][e.kind] = e.weight
            else:
                g.add_edge(e.source, e.target, weight=value, kinds={e.kind: e.weight})
            if e.heads is not None:
                g.edges[e.source, e.target]["heads"] = list(e.heads)
        return g


class _LazyContributions:
    """Computes each block's contributions only for the positions asked for."""

    def __init__(self, trace: Trace, renorm: float | None, budget_mb: float, device=None):
        self.trace, self.renorm, self.budget, self.device = trace, renorm, budget_mb, device

    def mlp(self, layer: int, positions: torch.Tensor) -> C.MlpContributions:
        return C.mlp_contributions(self.trace, layer, positions, self.renorm)

    def attention(self, layer: int, queries: torch.Tensor) -> C.AttentionContributions:
        return C.attention_contributions(self.trace, layer, queries, self.renorm, self.budget,
                                         device=self.device)  # fmt: skip


class WatchedContributions(_LazyContributions):
    """Lazy contributions that also compute each attention block at the ``watch`` positions
    along with what the walk asks for, and keep those rows: per-query results do not depend
    on which queries are computed together (attention rows come in fixed blocks)."""

    def __init__(self, trace: Trace, watch: torch.Tensor, budget_mb: float):
        super().__init__(trace, None, budget_mb)
        self.watch, self.watched = torch.as_tensor(watch, dtype=torch.long).reshape(-1), {}

    def attention(self, layer: int, queries: torch.Tensor) -> C.AttentionContributions:
        asked = torch.as_tensor(queries, dtype=torch.long).reshape(-1)
        both = torch.unique(torch.cat([asked, self.watch]))  # sorted
        a = super().attention(layer, both)
        self.watched[layer] = _rows(a, torch.searchsorted(both, self.watch))
        return _rows(a, torch.searchsorted(both, asked))

    def at_watch(self, layer: int) -> C.AttentionContributions:
        """The block of ``layer`` at the watched positions (computed if the walk skipped it)."""
        if layer not in self.watched:
            self.watched[layer] = super().attention(layer, self.watch)
        return self.watched[layer]


def _rows(a: C.AttentionContributions, idx: torch.Tensor) -> C.AttentionContributions:
    mlp = None if a.mlp is None else a.mlp[idx]
    return C.AttentionContributions(a.layer, a.queries[idx], a.heads[idx], a.residual[idx], mlp)


def routes_and_blocks(
    trace: Trace, target: int, threshold: float = 0.04,
    memory_budget_mb: float = C.DEFAULT_MEMORY_BUDGET_MB,
) -> tuple[RouteGraph | None, tuple[C.AttentionContributions, ...]]:  # fmt: skip
    """The routes to ``target`` (None where none survives the threshold) and every layer's
    attention block at ``target`` (its per-head contributions), in one walk: the blocks the
    routes computed there anyway are not computed again (the batch job's rows)."""
    target = check_index("Target position", target, trace.n_tokens, negative=True)
    provider = WatchedContributions(trace, torch.tensor([target]), memory_budget_mb)
    try:
        graph = _routes(trace, provider, [target], threshold, None)
    except EmptyRoutesError:
        graph = None
    return graph, tuple(provider.at_watch(layer) for layer in range(trace.n_layers))


@dataclass(frozen=True, eq=False)
class FullGraph:
    """Every target's contributions: per layer, attention heads [T, T, H] and residual [T],
    MLP [T] and its residual [T]. Query chunks bound the working memory."""

    trace: Trace
    renormalizing_threshold: float | None
    attention_parts: tuple[C.AttentionContributions, ...]  # per layer, every query
    mlp_parts: tuple[C.MlpContributions, ...]  # per layer, every position

    def mlp(self, layer: int, positions: torch.Tensor) -> C.MlpContributions:
        m = self.mlp_parts[layer]
        return C.MlpContributions(layer, positions, m.mlp[positions], m.residual[positions])

    def attention(self, layer: int, queries: torch.Tensor) -> C.AttentionContributions:
        a = self.attention_parts[layer]
        mlp = None if a.mlp is None else a.mlp[queries]
        return C.AttentionContributions(layer, queries, a.heads[queries], a.residual[queries], mlp)

    def prune(
        self, target_positions=None, threshold: float = 0.04, reading: Reading | None = None
    ) -> RouteGraph:
        """The routes to ``target_positions``: the same walk as :func:`routes`."""
        renorm = self.renormalizing_threshold
        return _routes(self.trace, self, target_positions, threshold, renorm, reading)


def kernel_device(model_device: str) -> str | None:
    """Where the proximity kernel runs for a model on ``model_device``: None (the CPU's numba
    kernel) for "cpu", else that device (the torch kernel follows the model)."""
    return None if str(model_device) == "cpu" else str(model_device)


def build_graph(
    trace: Trace,
    renormalizing_threshold: float | None = None,
    memory_budget_mb: float = C.DEFAULT_MEMORY_BUDGET_MB,
    progress: bool = False,
    device: str | None = None,
) -> FullGraph:
    """Contributions of every block at every position (the full graph); the attention
    kernel runs on ``device`` (the model's: "cuda", "mps") or, by default, the CPU."""
    check_threshold(renormalizing_threshold, "renormalizing_threshold", allow_none=True)
    attention, mlps = [], []
    layers = range(trace.n_layers)
    for layer in tqdm(layers, desc="full graph", unit="layer", disable=not progress):
        attention.append(
            C.attention_contributions(
                trace, layer, None, renormalizing_threshold, memory_budget_mb, device=device
            )  # fmt: skip
        )
        if not trace.family.parallel:  # a parallel block's MLP is a part of its attention target
            mlps.append(C.mlp_contributions(trace, layer, None, renormalizing_threshold))
    return FullGraph(trace, renormalizing_threshold, tuple(attention), tuple(mlps))


def routes(
    trace: Trace,
    target_positions=None,
    threshold: float = 0.04,
    renormalizing_threshold: float | None = None,
    memory_budget_mb: float = C.DEFAULT_MEMORY_BUDGET_MB,
    reading: Reading | None = None,
    device: str | None = None,
) -> RouteGraph:
    """The routes to the predictions at ``target_positions`` (default: the last token, or a
    masked LM's first [MASK]), lazily; with ``reading``, each part weighted by the share of it
    its reader reads (``lmtt.flow.read``; the graph's score is then "read"); ``device`` as for
    :func:`build_graph`."""
    check_threshold(renormalizing_threshold, "renormalizing_threshold", allow_none=True)
    provider = _LazyContributions(trace, renormalizing_threshold, memory_budget_mb, device)
    return _routes(trace, provider, target_positions, threshold, renormalizing_threshold, reading)


def check_threshold(value, name: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or not 0.0 <= float(value) < 1.0:
        raise RouteError(f"{name} must be in [0, 1) (got {value!r}); 0.04 is a good start.")


def _target_positions(trace: Trace, target_positions) -> list[int]:
    if target_positions is None:
        target_positions = [trace.default_target()]
    elif isinstance(target_positions, int):
        target_positions = [target_positions]
    n = trace.n_tokens
    return sorted({check_index("Target position", p, n, negative=True) for p in target_positions})


def _routes(trace, provider, target_positions, threshold, renorm, reading=None) -> RouteGraph:
    check_threshold(threshold, "threshold")
    targets = _target_positions(trace, target_positions)
    edges = walk(trace, provider, targets, threshold, reading)
    if not edges:
        raise _empty_routes(trace, provider, targets, threshold)
    score = "proximity" if reading is None else "read"
    return route_graph(trace, trace.token_strs, targets, threshold, renorm, edges, score)


def walk(trace, provider, targets: list[int], threshold: float, reading=None) -> list[Edge]:
    """The edges kept walking back from ``Resid(L-1, t)`` for each target t: per layer, the
    contributions ``provider`` gives at the positions reached (section 3's pruning)."""
    reached = torch.zeros(trace.n_tokens, dtype=torch.bool)
    reached[targets] = True
    edges: list[Edge] = []
    step = _parallel_step if trace.family.parallel else _sequential_step
    read = None if reading is None else ReadWalk.start(trace, targets, reading)
    for layer in reversed(range(trace.n_layers)):
        n_before = len(edges)
        below = step(provider, layer, reached.nonzero().flatten(), threshold, edges, read)
        read = None if read is None else read.below(layer, edges[n_before:])
        reached = torch.zeros(trace.n_tokens, dtype=torch.bool)
        reached[below] = True
    return edges


def route_graph(
    trace, tokens, targets, threshold: float, renorm, edges: list[Edge], score: str
) -> RouteGraph:  # fmt: skip
    """The :class:`RouteGraph` of a walk's ``edges`` on ``trace``'s model, over ``tokens`` (its
    nodes: the edges' ends and the targets)."""
    nodes = {resid(trace.n_layers - 1, t) for t in targets}
    for e in edges:
        nodes.update((e.source, e.target))
    return RouteGraph(
        model=trace.model_name,
        tokens=tuple(tokens),
        target_positions=tuple(targets),
        threshold=float(threshold),
        renormalizing_threshold=renorm,
        nodes=tuple(sorted(nodes, key=Node.sort_key)),
        edges=tuple(sorted(edges, key=lambda e: (e.target.sort_key(), e.source.sort_key()))),
        score=score,
    )


def _sequential_step(provider, layer: int, pos, threshold: float, edges: list, read=None):
    """Layer ``layer`` of the walk for ``out = mid + mlp``, ``mid = x + attention``: the
    edges kept into the reached block outputs ``pos`` (weighted by ``read``, a
    :class:`ReadWalk`, if given); returns the positions reached below (with repeats)."""
    m = provider.mlp(layer, pos)
    m = m if read is None else read.mlp(m)
    kept = _output_edges(layer, pos, m.mlp, m.residual, attn_out, threshold, edges)
    queries = pos[kept]
    a = provider.attention(layer, queries)
    a = a if read is None else read.attention(a, read_by_mlp=(m.mlp > threshold)[kept])
    src = _attention_edges(a, queries, layer, attn_out, threshold, edges)
    keep_ares = a.residual > threshold
    kept_q = queries[keep_ares]
    for q, w in zip(kept_q.tolist(), a.residual[keep_ares].tolist(), strict=True):
        edges.append(Edge(layer_input(layer, q), attn_out(layer, q), "residual", w))
    return torch.cat([src, kept_q])


def _parallel_step(provider, layer: int, pos, threshold: float, edges: list, read=None):
    """Layer ``layer`` of the walk for ``out = x + attention + mlp``: one target per position,
    whose parts are the heads' sources, the MLP (which reads x) and the residual x."""
    a = provider.attention(layer, pos)
    a = a if read is None else read.attention(a)
    src = _attention_edges(a, pos, layer, resid, threshold, edges)
    kept = _output_edges(layer, pos, a.mlp, a.residual, layer_input, threshold, edges)
    return torch.cat([src, pos[kept]])


def _output_edges(layer: int, pos, mlp, residual, source, threshold: float, edges: list):
    """The MLP edges (``source`` -> MLP -> block output) and residual edges (``source`` ->
    block output) above the threshold at ``pos``; returns the mask of positions kept."""
    keep_mlp, keep_res = mlp > threshold, residual > threshold
    for p, w in zip(pos[keep_mlp].tolist(), mlp[keep_mlp].tolist(), strict=True):
        edges.append(Edge(source(layer, p), mlp_block(layer, p), "mlp", w))
        edges.append(Edge(mlp_block(layer, p), resid(layer, p), "mlp", w))
    for p, w in zip(pos[keep_res].tolist(), residual[keep_res].tolist(), strict=True):
        edges.append(Edge(source(layer, p), resid(layer, p), "residual", w))
    return keep_mlp | keep_res


def _attention_edges(a, queries, layer: int, target, threshold: float, edges: list):
    """Attention edges above the threshold into ``target(layer, q)``; returns their sources."""
    weights = a.sources  # [Q, S]: the keys of each query's prompt (S of them)
    qi, j = (weights > threshold).nonzero(as_tuple=True)
    heads = a.heads[qi, j].tolist()
    q = queries[qi]
    src = q - q % weights.shape[1] + j  # positions (a stacked trace's keys: its prompt's)
    triples = zip(q.tolist(), src.tolist(), weights[qi, j].tolist(), strict=True)
    for (i, s, w), h in zip(triples, heads, strict=True):
        edges.append(Edge(layer_input(layer, s), target(layer, i), "attention", w, tuple(h)))
    return src


def _empty_routes(trace, provider, targets, threshold) -> EmptyRoutesError:
    last, targets = trace.n_layers - 1, torch.tensor(targets)
    if trace.family.parallel:
        a = provider.attention(last, targets)
        best = float(max(a.sources.max(), a.mlp.max(), a.residual.max()))
    else:
        m = provider.mlp(last, targets)
        best = float(torch.maximum(m.mlp, m.residual).max())
    return EmptyRoutesError(
        f"No route survives threshold {threshold}: the strongest edge into the prediction has "
        f"weight {best:.3f}. Use a threshold below {best:.3f} (0.04 is a good start).",
        max_threshold=best,
    )
