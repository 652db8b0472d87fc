"""DESIGN.md §3: lazy routes, full graph, export; invariant 3; a forced-copy model."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmtt.errors import EmptyRoutesError, LmttError, OutOfRangeError, RouteError
from lmtt.flow.graph import Edge, RouteGraph, build_graph, routes
from lmtt.models import load_model
from lmtt.models.trace import run_trace

PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def trace_and_full(request, gpt2_model, llama_model):
    model = {"gpt2": gpt2_model, "llama": llama_model}[request.param]
    trace = run_trace(model, PROMPT)
    return trace, build_graph(trace)


@settings(max_examples=30, deadline=None)
@given(
    threshold=st.floats(0.0, 0.6),
    targets=st.lists(st.integers(-20, 19), min_size=1, max_size=3),
)
def test_lazy_routes_equal_full_graph_pruned(trace_and_full, threshold, targets):
    trace, full = trace_and_full
    targets = [t % trace.n_tokens for t in targets]
    try:
        lazy = routes(trace, targets, threshold)
    except EmptyRoutesError:
        with pytest.raises(EmptyRoutesError):
            full.prune(targets, threshold)
        return
    assert lazy == full.prune(targets, threshold)
    assert all(e.weight > threshold for e in lazy.edges)


def test_renormalized_routes_equal_full_graph_pruned(gpt2_model):
    trace = run_trace(gpt2_model, PROMPT)
    full = build_graph(trace, renormalizing_threshold=0.05, memory_budget_mb=0.01)
    assert routes(trace, None, 0.04, renormalizing_threshold=0.05) == full.prune(None, 0.04)


def test_route_structure(trace_and_full):
    trace, _ = trace_and_full
    graph = routes(trace, threshold=0.02)
    L, last = trace.n_layers, trace.n_tokens - 1
    assert ("resid", L - 1, last) in {(n.kind, n.layer, n.pos) for n in graph.nodes}
    node_set = set(graph.nodes)
    for e in graph.edges:
        assert e.source in node_set and e.target in node_set
        if e.kind == "attention":
            assert e.target.kind == "attn_out" and e.source.pos <= e.target.pos
            assert abs(sum(e.heads) - e.weight) < 1e-5
        if e.source.kind == "embed":
            assert e.target.layer == 0
    # Every node except the target reaches the target.
    nx_graph = graph.to_networkx()
    import networkx as nx

    target = next(n for n in graph.nodes if n.kind == "resid" and n.layer == L - 1)
    assert all(n == target or nx.has_path(nx_graph, n, target) for n in graph.nodes)


def test_json_round_trip_and_networkx(trace_and_full, tmp_path):
    trace, _ = trace_and_full
    graph = routes(trace, threshold=0.03)
    path = tmp_path / "g.json"
    path.write_text(graph.dumps())
    data = json.loads(path.read_text())
    assert data["schema_version"] == 2 and data["tokens"] == list(trace.token_strs)
    assert {"kind", "layer", "pos"} == set(data["nodes"][0])
    assert RouteGraph.from_json(path.read_text()) == graph
    g = graph.to_networkx()
    assert g.number_of_nodes() == len(graph.nodes)
    assert sum(len(d["kinds"]) for *_, d in g.edges(data=True)) == len(graph.edges)
    with pytest.raises(LmttError, match="schema_version"):
        RouteGraph.from_json({**data, "schema_version": 99})


def test_bad_route_inputs(gpt2_model):
    trace = run_trace(gpt2_model, "The cat sat")
    n = trace.n_tokens
    with pytest.raises(
        OutOfRangeError, match=rf"Target position {n} is out of range: 0\.\.{n - 1}"
    ):
        routes(trace, [trace.n_tokens])
    for bad in (-0.1, 1.0, 2.0, float("nan")):
        with pytest.raises(RouteError, match=r"\[0, 1\)"):
            routes(trace, None, bad)
    with pytest.raises(EmptyRoutesError, match="Use a threshold below") as err:
        routes(trace, None, 0.999)
    assert 0 < err.value.max_threshold < 0.999


def _copy_model(folder, n_heads=4, d_model=32, source_token_text=" Mary"):
    """A 1-layer GPT-2 whose head 1 attends from every position to the token ' Mary' and
    writes a large vector; the other heads write nothing and the MLP is off."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from lmtt.testing import _tokenizer

    tok = _tokenizer(320)
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=64,
        n_embd=d_model,
        n_layer=1,
        n_head=n_heads,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = GPT2LMHeadModel(config)
    source_id = tok(source_token_text)["input_ids"][0]
    dh, head = d_model // n_heads, 1
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        gen = torch.Generator().manual_seed(0)
        wte = torch.randn(len(tok), d_model, generator=gen) * 0.5
        wte[:, 0] = 0.0
        wte[source_id, 0] = 10.0  # only the source token has a component on dim 0
        model.transformer.wte.weight.copy_(wte)
        block = model.transformer.h[0]
        block.ln_1.weight.fill_(1.0)
        block.ln_1.bias[1] = 1.0  # every query gets a constant component on dim 1
        block.ln_2.weight.fill_(1.0)
        model.transformer.ln_f.weight.fill_(1.0)
        W = block.attn.c_attn.weight  # [d, 3d]: Q | K | V columns, head h at h*dh
        W[1, head * dh] = 1.0  # q_head[0] = 1 everywhere
        W[0, d_model + head * dh] = 50.0  # k_head[0] large only for the source token
        W[0, 2 * d_model + head * dh] = 1.0  # v_head[0] = the source's dim-0 value
        block.attn.c_proj.weight[head * dh, 2:] = 5.0  # head writes a big vector
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_forced_copy_route_goes_through_source_token_and_head(tmp_path):
    model = load_model(str(_copy_model(tmp_path / "copy")), device="cpu")
    trace = run_trace(model, "When Mary and John went to the store, John gave")
    source = trace.token_strs.index(" Mary")
    assert trace.pattern(0)[1, -1, source] > 0.99  # the weights force the copy
    graph = routes(trace, threshold=0.1)
    attention = [
        e for e in graph.edges if e.kind == "attention" and e.target.pos == trace.n_tokens - 1
    ]
    assert [e.source.pos for e in attention] == [source]
    heads = attention[0].heads
    assert max(range(len(heads)), key=heads.__getitem__) == 1
    assert attention[0].weight > 0.5


def _reference_routes(trace, targets, threshold):
    """Independent of lmtt.graph's walker: list every edge of the full graph (DESIGN.md §3)
    from the contribution tensors, then keep what reaches a target backwards via edges above
    the threshold."""
    from lmtt.flow import contributions as C

    T, L = trace.n_tokens, trace.n_layers

    def inp(layer, pos):
        return ("resid", layer - 1, pos) if layer > 0 else ("embed", None, pos)

    edges = []  # (source, target, kind, weight)
    for layer in range(L):
        a = C.attention_contributions(trace, layer)
        m = C.mlp_contributions(trace, layer)
        for i in range(T):
            attn, mlp, res = ("attn_out", layer, i), ("mlp", layer, i), ("resid", layer, i)
            for j in range(i + 1):
                edges.append((inp(layer, j), attn, "attention", float(a.heads[i, j].sum())))
            edges.append((inp(layer, i), attn, "residual", float(a.residual[i])))
            edges.append((attn, mlp, "mlp", float(m.mlp[i])))
            edges.append((mlp, res, "mlp", float(m.mlp[i])))
            edges.append((attn, res, "residual", float(m.residual[i])))
    into: dict = {}
    for e in edges:
        if e[3] > threshold:
            into.setdefault(e[1], []).append(e)
    frontier = [("resid", L - 1, t) for t in targets]
    seen, kept = set(frontier), set()
    while frontier:
        node = frontier.pop()
        for e in into.get(node, []):
            kept.add(e[:3])
            if e[0] not in seen:
                seen.add(e[0])
                frontier.append(e[0])
    return seen, kept


@pytest.mark.parametrize("threshold", [0.0, 0.02, 0.05, 0.2])
def test_routes_match_independent_prune(trace_and_full, threshold):
    trace, _ = trace_and_full
    targets = [trace.n_tokens - 1, 3]
    graph = routes(trace, targets, threshold)
    nodes, edges = _reference_routes(trace, targets, threshold)
    assert {(n.kind, n.layer, n.pos) for n in graph.nodes} == nodes
    mine = {
        (
            (e.source.kind, e.source.layer, e.source.pos),
            (e.target.kind, e.target.layer, e.target.pos),
            e.kind,
        )
        for e in graph.edges
    }
    assert mine == edges


def test_elements_are_found_by_id(trace_and_full):
    trace, _ = trace_and_full
    graph = routes(trace, threshold=0.03)
    edge, node = graph.edges[0], graph.nodes[0]
    assert Edge.parse_id(edge.id) == (edge.source, edge.target, edge.kind)
    assert graph.find(edge.id) == edge and graph.find(edge.id).heads == edge.heads
    assert graph.find(node.id) == node
    assert graph.find("resid:0:999") is None  # a node that is not on the routes
    for bad in ("resid:0", "resid:0:1>resid:0:2", "a>b>attention", "x:0:1>resid:0:2>mlp"):
        with pytest.raises(ValueError):
            graph.find(bad)


@pytest.mark.parametrize("threshold", [0.02, 0.1, 0.9])
def test_routes_and_blocks_equal_the_routes_and_each_block_alone(tiny_model, threshold):
    """One walk gives the routes (as routes() does) and every layer's attention block at the
    target (as attention_contributions at that one query gives it), bit for bit; past every
    route's weight the graph is None and the blocks are still there."""
    from lmtt.flow import contributions as C
    from lmtt.flow.graph import routes_and_blocks

    trace = run_trace(tiny_model, "When Mary and John went to the store, John gave a drink to")
    target = trace.n_tokens - 1
    graph, blocks = routes_and_blocks(trace, target, threshold)
    try:
        assert graph == routes(trace, [target], threshold)
    except EmptyRoutesError:
        assert graph is None
    assert len(blocks) == trace.n_layers
    for layer, block in enumerate(blocks):
        alone = C.attention_contributions(trace, layer, [target])
        assert block.queries.tolist() == [target]
        assert torch.equal(block.heads, alone.heads) and torch.equal(block.residual, alone.residual)
