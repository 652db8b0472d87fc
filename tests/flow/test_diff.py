"""Graph diffs (lmtt.flow.diff): hand-made routes of two prompts compared edge by edge."""

import pytest

from lmtt.errors import RouteError
from lmtt.flow.diff import diff_routes
from lmtt.flow.graph import Edge, Node, RouteGraph, attn_out, embed, resid


def _graph(tokens, edges, target=None) -> RouteGraph:
    nodes = sorted({n for e in edges for n in (e.source, e.target)}, key=Node.sort_key)
    target = len(tokens) - 1 if target is None else target
    return RouteGraph("m", tuple(tokens), (target,), 0.1, None, tuple(nodes), tuple(edges))


def test_edges_only_in_one_in_both_and_outside():
    a = _graph(["x", "y", "z"], [Edge(embed(0), attn_out(0, 2), "attention", 0.5, (0.5,)),
                                 Edge(embed(2), attn_out(0, 2), "residual", 0.5),
                                 Edge(attn_out(0, 2), resid(0, 2), "residual", 1.0)])  # fmt: skip
    # B has one more token in front: its positions move down by one to line up the targets
    b_edges = [Edge(embed(0), attn_out(0, 3), "attention", 0.2, (0.2,)),
               Edge(embed(2), attn_out(0, 3), "attention", 0.3, (0.3,)),
               Edge(embed(3), attn_out(0, 3), "residual", 0.5),
               Edge(attn_out(0, 3), resid(0, 3), "residual", 0.7)]  # fmt: skip
    b = _graph(["w", "x", "q", "z"], b_edges)
    d = diff_routes(a, b)
    assert d.shift == -1
    assert [e.id for e in d.only_a] == ["embed::0>attn_out:0:2>attention"]
    assert [e.id for e in d.only_b] == ["embed::1>attn_out:0:2>attention"]  # B's 'q' at A's 1
    assert [e.id for e in d.outside] == ["embed::0>attn_out:0:3>attention"]  # B's 'w'
    top, wa, wb = d.changes(1)[0]
    assert top.id == "attn_out:0:2>resid:0:2>residual" and (wa, wb) == (1.0, 0.7)
    g = d.graph()
    assert g.tokens == ("x", "y|q", "z") and g.score == "diff" and g.signed
    weights = {e.id: e.weight for e in g.edges}
    assert weights["embed::0>attn_out:0:2>attention"] == -0.5  # only in A: negated
    assert weights["embed::1>attn_out:0:2>attention"] == 0.3  # only in B
    assert weights["attn_out:0:2>resid:0:2>residual"] == pytest.approx(-0.3)
    assert weights["embed::2>attn_out:0:2>residual"] == 0.0  # unchanged


def test_a_diff_needs_one_target_each():
    a = _graph(["x", "y"], [Edge(embed(1), resid(0, 1), "residual", 1.0)])
    two = RouteGraph("m", ("x", "y"), (0, 1), 0.1, None, a.nodes, a.edges)
    with pytest.raises(RouteError, match="one target"):
        diff_routes(a, two)
