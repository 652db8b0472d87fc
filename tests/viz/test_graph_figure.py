"""The route graph figure with signed scores and with measured effects."""

from lmtt.flow.graph import Edge, RouteGraph, attn_out, embed, resid
from lmtt.viz.graph_figure import AGAINST, EDGE_COLOUR, FOR, NEGATIVE, NO_EFFECT, route_figure
from lmtt.viz.graph_svg import route_svg

EDGES = (
    Edge(embed(0), attn_out(0, 1), "attention", 0.5),
    Edge(embed(1), attn_out(0, 1), "residual", -0.25),  # works against the prediction
    Edge(attn_out(0, 1), resid(0, 1), "residual", 1.0),
)


def _graph(score: str = "knockout") -> RouteGraph:
    nodes = sorted({n for e in EDGES for n in (e.source, e.target)}, key=lambda n: n.sort_key())
    return RouteGraph("m", ("a", "b"), (1,), 0.1, None, tuple(nodes), EDGES, score=score)


def _line_colours(fig) -> list[str]:
    """The colours of the drawn edges (not of the legend's entries)."""
    return [t.line.color for t in fig.data if t.mode == "lines" and t.showlegend is False]


def test_the_legend_names_every_edge_colour_and_every_row_is_labelled():
    fig = route_figure(_graph(), 1)
    legend = {t.name for t in fig.data if t.mode == "lines" and t.showlegend is not False}
    assert {"attention edge", "residual edge", "against the prediction"} <= legend
    assert "MLP edge" not in legend  # no MLP edge in this graph
    assert list(fig.layout.yaxis.ticktext) == ["embedding", "L0 attn", "L0 MLP", "L0 out"]
    effects = route_figure(_graph(), 1, effects={EDGES[0].id: 0.5})
    names = {t.name for t in effects.data if t.mode == "lines" and t.showlegend is not False}
    assert names == {"for the prediction", "against it", "no effect"}


def test_negative_scores_are_violet_and_sized_by_magnitude():
    lines = [
        t for t in route_figure(_graph(), 1).data if t.mode == "lines" and t.showlegend is False
    ]
    width = {t.line.color.rsplit(",", 1)[0].removeprefix("rgba("): t.line.width for t in lines}
    assert set(width) == {NEGATIVE, EDGE_COLOUR["attention"], EDGE_COLOUR["residual"]}
    assert width[NEGATIVE] < width[EDGE_COLOUR["attention"]] < width[EDGE_COLOUR["residual"]]


def test_measured_effects_colour_for_against_and_none():
    ids = [e.id for e in EDGES]
    effects = {ids[0]: 0.4, ids[1]: -0.2, ids[2]: 0.001}
    fig = route_figure(_graph(), 1, effects=effects, min_share=0.01)
    colours = " ".join(_line_colours(fig))
    assert FOR in colours and AGAINST in colours and NO_EFFECT in colours
    hover = " ".join(next(t for t in fig.data if t.name == "edges").hovertemplate)
    assert "measured effect 0.400" in hover and "knockout share 0.500" in hover


def test_the_svg_draws_negative_scores_in_violet():
    svg = route_svg(_graph(), 1)
    assert f"rgb({NEGATIVE})" in svg


def test_key_and_query_edges_bend_aside_from_the_value_edge_they_share_ends_with():
    from lmtt.viz.graph_figure import edge_midpoint

    value = EDGES[0]
    key = Edge(value.source, value.target, "key", 0.3)
    query = Edge(value.source, value.target, "query", 0.3)
    points = {edge_midpoint(e) for e in (value, key, query)}
    assert len(points) == 3  # three places to click
    nodes = sorted({n for e in EDGES for n in (e.source, e.target)}, key=lambda n: n.sort_key())
    graph = RouteGraph("m", ("a", "b"), (1,), 0.1, None, tuple(nodes), (*EDGES, key, query))
    pickers = next(t for t in route_figure(graph, 1).data if t.name == "edges")
    assert set(pickers.customdata) == {e.id for e in graph.edges}
    assert any(t.line.dash == "dash" for t in route_figure(graph, 1).data if t.mode == "lines")


def test_the_svg_bends_key_and_query_edges_aside_and_dashes_them():
    import re

    value = EDGES[0]
    key = Edge(value.source, value.target, "key", 0.3)
    nodes = sorted({n for e in EDGES for n in (e.source, e.target)}, key=lambda n: n.sort_key())
    graph = RouteGraph("m", ("a", "b"), (1,), 0.1, None, tuple(nodes), (*EDGES, key))
    svg = route_svg(graph, 1)
    paths = re.findall(r'<path d="M([\d.]+),([\d.]+) Q([\d.]+),([\d.]+) ([\d.]+),([\d.]+)"[^>]*>'
                       r"<title>(\w+)", svg)  # fmt: skip
    by_kind = {p[-1]: [float(v) for v in p[:6]] for p in paths}
    x0, _, cx, _, x1, _ = by_kind["key"]
    assert abs(cx - (x0 + x1) / 2) > 10  # bent aside
    x0, _, cx, _, x1, _ = by_kind[value.kind]
    assert abs(cx - (x0 + x1) / 2) < 1e-6  # straight
    assert svg.count("stroke-dasharray") == 1


def _long_graph(n_tokens: int = 3000) -> RouteGraph:
    last = n_tokens - 1
    edges = (
        Edge(embed(3), attn_out(0, last), "attention", 0.4, (0.4,)),
        Edge(embed(2000), attn_out(0, last), "attention", 0.2, (0.2,)),
        Edge(embed(last), attn_out(0, last), "residual", 0.4),
        Edge(attn_out(0, last), resid(0, last), "residual", 1.0),
    )
    nodes = sorted({n for e in edges for n in (e.source, e.target)}, key=lambda n: n.sort_key())
    tokens = tuple(f"t{i}" for i in range(n_tokens))
    return RouteGraph("m", tokens, (last,), 0.1, None, tuple(nodes), edges)


def test_a_long_prompt_draws_only_the_positions_on_the_routes():
    from lmtt.viz.graph_figure import column_labels, route_columns

    graph = _long_graph()
    cols = route_columns(graph)
    assert cols == {3: 0, 2000: 1, 2999: 2}
    assert column_labels(graph, cols) == ["⋯ 3 t3", "⋯ 2000 t2000", "⋯ 2999 t2999"]
    fig = route_figure(graph, 1)
    assert list(fig.layout.xaxis.tickvals) == [0, 1, 2]
    xs = {x for t in fig.data if t.mode == "markers" for x in t.x}
    assert max(xs) < 3  # no column for the 2,997 positions without a node
    ids = {i for t in fig.data if t.mode == "markers" for i in t.customdata}
    assert "embed::2000" in ids and graph.edges[1].id in ids  # clicks still name positions
    assert route_svg(graph, 1).count("<text") == 2 + 3 + 1  # layers, columns, title
    short = _graph()
    assert route_columns(short) == {0: 0, 1: 1}
    assert list(route_figure(short, 1).layout.xaxis.ticktext) == ["a", "b"]


def test_many_route_positions_open_on_a_window_around_the_target():
    n = 300
    last = n - 1
    edges = tuple(Edge(embed(j), attn_out(0, last), "attention", 1 / n, (1 / n,))
                  for j in range(0, n, 2))  # fmt: skip
    nodes = sorted({n for e in edges for n in (e.source, e.target)}, key=lambda n: n.sort_key())
    graph = RouteGraph("m", tuple(map(str, range(n))), (last,), 0.0, None, tuple(nodes), edges)
    lo, hi = route_figure(graph, 1).layout.xaxis.range
    assert abs(hi - lo - 48.4) < 1e-9 and lo < 150 < hi  # the last 48 of 151 columns


def test_the_rank_plot_labels_only_powers_of_ten():
    from lmtt.viz.charts import rank_figure

    fig = rank_figure([("embed", 340), ("L0", 12), ("L1", 0)], " x")
    assert list(fig.layout.yaxis.ticktext) == ["1", "10", "100", "1,000"]  # not 1 2 5 10 2 5


def test_a_triangle_under_each_column_picks_the_target():
    """The graph's target pickers: one per drawn column on the token axis, the target's
    filled dark; their customdata names the position (lmtt.ui.routes.graph_panel)."""
    from lmtt.viz.graph_figure import TARGET_PICK

    assert not [t for t in route_figure(_graph(), 1).data if t.name == "pick the target"]
    fig = route_figure(_graph(), 1, pickers=True)  # the app's graph, which handles clicks
    (pickers,) = [t for t in fig.data if t.name == "pick the target"]
    assert list(pickers.customdata) == [f"{TARGET_PICK}0", f"{TARGET_PICK}1"]
    assert list(pickers.x) == [0, 1] and set(pickers.y) == {-0.42}
    assert list(pickers.marker.color) == ["#ccc", "#444"]  # position 1 is the target
    assert fig.layout.yaxis.range[0] < -0.42  # drawn inside the plot, over the token labels
