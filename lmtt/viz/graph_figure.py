"""The route graph as a plotly figure: tokens along x, layers up y."""

from __future__ import annotations

import plotly.graph_objects as go

from lmtt.flow.graph import Node, RouteGraph
from lmtt.viz.text import token_label

KIND_STYLE = {  # colour, marker symbol, label
    "embed": ("#6c757d", "square", "embedding"),
    "attn_out": ("#e8590c", "circle", "after attention"),
    "mlp": ("#2f9e44", "diamond", "MLP block"),
    "resid": ("#1c7ed6", "circle", "residual (block output)"),
}
EDGE_COLOUR = {"attention": "232, 89, 12", "residual": "120, 120, 120", "mlp": "47, 158, 68",
               "key": "134, 46, 156", "query": "12, 133, 153"}  # fmt: skip
DASHED = ("key", "query")  # parts that made an attention score: not a path (dashed)
NEGATIVE = "112, 72, 232"  # a signed score's edge that works against the prediction
FOR, AGAINST, NO_EFFECT = "217, 48, 37", "26, 115, 232", "190, 190, 190"  # measured effects
N_BINS = 6  # edges are drawn in this many weight bins (one trace each)


COLLAPSE_AFTER = 64  # longer prompts draw only the positions the routes touch
WINDOW = 48  # columns shown at first around the target (pan or zoom out for the rest)


def route_columns(
    graph: RouteGraph, collapse_after: int = COLLAPSE_AFTER, collapse: bool | None = None
) -> dict[int, int]:
    """The x column of each position drawn: every position, or only the positions with a
    node on the routes, in order (a gap in the positions is marked on the axis): when
    ``collapse`` says so, by default for a prompt of more than ``collapse_after`` tokens."""
    n_tokens = len(graph.tokens)
    if not (n_tokens > collapse_after if collapse is None else collapse):
        return {p: p for p in range(n_tokens)}
    used = sorted({n.pos for n in graph.nodes} | set(graph.target_positions))
    return {p: c for c, p in enumerate(used)}


def node_xy(node: Node, columns: dict[int, int] | None = None) -> tuple[float, float]:
    """Embedding at y=0; layer l: attention output at 2l+1, MLP at 2l+1.5 (shifted right),
    block output at 2l+2; x is the node's column (its position unless ``columns`` say)."""
    x = float(node.pos if columns is None else columns[node.pos])
    if node.kind == "embed":
        return x, 0.0
    base = 2 * node.layer
    if node.kind == "attn_out":
        return x, base + 1.0
    if node.kind == "mlp":
        return x + 0.3, base + 1.5
    return x, base + 2.0


def route_figure(
    graph: RouteGraph,
    n_layers: int,
    title: str = "",
    selected: str | None = None,
    height: int = 640,
    effects: dict[str, float] | None = None,
    min_share: float = 0.01,
    collapse: bool | None = None,
    pickers: bool = False,
) -> go.Figure:
    """Edges as lines (width and opacity by weight, or coloured by measured ``effects``:
    edge id -> share of the metric), nodes as markers with ids in customdata. Each edge also
    gets an invisible marker at its midpoint so it can be clicked. A long prompt (or any,
    with ``collapse``) draws only the positions on the routes (:func:`route_columns`), first
    showing a window of them around the target. With ``pickers``, a triangle under each
    column asks for the routes to that token (the app's graph, which handles the click)."""
    fig = go.Figure()
    cols = route_columns(graph, collapse=collapse)
    for trace in _edge_lines(graph, effects, min_share, cols):
        fig.add_trace(trace)
    for trace in _edge_legend(graph, effects):
        fig.add_trace(trace)
    fig.add_trace(_edge_pickers(graph, effects, cols))
    if pickers:
        fig.add_trace(_target_pickers(graph, cols))
    for trace in _node_markers(graph, selected, cols):
        fig.add_trace(trace)
    _lay_out(fig, graph, n_layers, title, height, cols)
    return fig


def _edge_style(graph: RouteGraph, effects: dict[str, float] | None, min_share: float):
    """Each edge's (rgb, size in [0, 1]): by kind and weight (a negative weight, working
    against the prediction, in violet) or, with ``effects`` (measured shares of the metric),
    red for an effect for the prediction, blue against it, grey without effect."""
    if effects is None:
        top = max((abs(e.weight) for e in graph.edges), default=1.0) or 1.0
        return [
            (NEGATIVE if e.weight < 0 else EDGE_COLOUR[e.kind], abs(e.weight) / top)
            for e in graph.edges
        ]
    top = max((abs(v) for v in effects.values()), default=1.0) or 1.0
    out = []
    for e in graph.edges:
        v = effects.get(e.id, 0.0)
        rgb = NO_EFFECT if abs(v) < min_share else FOR if v > 0 else AGAINST
        out.append((rgb, max(abs(v) / top, 0.05)))
    return out


def _edge_lines(
    graph: RouteGraph, effects: dict[str, float] | None, min_share: float, cols: dict
) -> list[go.Scatter]:
    """One line trace per colour and size bin (width and opacity grow with the bin)."""
    buckets: dict[tuple[str, int, bool], list] = {}
    for e, (rgb, size) in zip(graph.edges, _edge_style(graph, effects, min_share), strict=True):
        b = min(N_BINS - 1, int(size * N_BINS - 1e-9)) if size > 0 else 0
        buckets.setdefault((rgb, b, e.kind in DASHED), []).append(e)
    traces = []
    for (rgb, b, dashed), edges in buckets.items():
        xs, ys = [], []
        for e in edges:
            (x0, y0), (x1, y1), (xm, ym) = *_ends(e, cols), edge_midpoint(e, cols)
            xs += [x0, xm, x1, None]
            ys += [y0, ym, y1, None]
        hi = (b + 1) / N_BINS
        line = {"width": 1 + 7 * hi, "color": f"rgba({rgb}, {0.25 + 0.7 * hi:.2f})"}
        if dashed:
            line["dash"] = "dash"
        traces.append(
            go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False, line=line)
        )
    return traces


# key/query edges bend aside: they may share a value edge's ends (see edge_midpoint)
BEND = {"key": 0.18, "query": -0.18}


EDGE_NAMES = {"attention": "attention edge", "residual": "residual edge", "mlp": "MLP edge",
              "key": "key edge (dashed)", "query": "query edge (dashed)"}  # fmt: skip


def _edge_legend(graph: RouteGraph, effects) -> list[go.Scatter]:
    """Legend entries (lines of no points) for the edge colours the figure uses."""
    if effects is not None:
        entries = [(FOR, "for the prediction"), (AGAINST, "against it"), (NO_EFFECT, "no effect")]
    else:
        kinds = dict.fromkeys(e.kind for e in graph.edges)
        entries = [(EDGE_COLOUR[k], EDGE_NAMES[k]) for k in kinds]
        if any(e.weight < 0 for e in graph.edges):  # a diff's negative: A leans on it more
            against = "A leans on it more" if graph.score == "diff" else "against the prediction"
            entries.append((NEGATIVE, against))
    return [
        go.Scatter(
            x=[None],
            y=[None],
            mode="lines",
            name=name,
            hoverinfo="skip",
            line={"color": f"rgb({rgb})", "width": 3},
        )  # fmt: skip
        for rgb, name in entries
    ]


def _ends(e, cols: dict | None = None) -> tuple[tuple[float, float], tuple[float, float]]:
    return node_xy(e.source, cols), node_xy(e.target, cols)


def edge_midpoint(e, cols: dict | None = None) -> tuple[float, float]:
    """Where an edge is drawn through and clicked: its middle, moved aside for key and query
    edges so they do not hide a value edge between the same nodes."""
    (x0, y0), (x1, y1) = _ends(e, cols)
    return (x0 + x1) / 2 + BEND.get(e.kind, 0.0), (y0 + y1) / 2


def _edge_pickers(graph: RouteGraph, effects: dict[str, float] | None, cols: dict) -> go.Scatter:
    """Invisible markers at the edges' midpoints: what a click on an edge selects."""
    mids = [(e, edge_midpoint(e, cols)) for e in graph.edges]
    name = f"{graph.score} share" if graph.signed else "weight"

    def hover(e) -> str:
        text = f"{e.kind} edge<br>{name} {e.weight:.3f}"
        if effects is not None:
            text += f"<br>measured effect {effects.get(e.id, 0.0):.3f} of the span"
        return text + "<extra></extra>"

    return go.Scatter(
        x=[m[0] for _, m in mids],
        y=[m[1] for _, m in mids],
        mode="markers",
        name="edges",
        showlegend=False,
        marker={"size": 9, "color": "rgba(0,0,0,0.01)"},
        customdata=[e.id for e, _ in mids],
        hovertemplate=[hover(e) for e, _ in mids],
    )


TARGET_PICK = "target:"  # customdata of a column's target picker: "target:<position>"


def _target_pickers(graph: RouteGraph, cols: dict[int, int]) -> go.Scatter:
    """A small triangle under each column, on the token axis: a click on one asks for the
    routes to that token's prediction (the target's is filled)."""
    target = graph.target_positions[0]
    positions = sorted(cols)
    hover = [f"position {p} '{token_label(graph.tokens[p])}'<br>click: explain the "
             "prediction here<extra></extra>" for p in positions]  # fmt: skip
    return go.Scatter(
        x=[cols[p] for p in positions],
        y=[-0.42] * len(positions),
        mode="markers",
        name="pick the target",
        showlegend=False,
        marker={
            "size": 9,
            "symbol": "triangle-up",
            "color": ["#444" if p == target else "#ccc" for p in positions],
        },  # fmt: skip
        customdata=[f"{TARGET_PICK}{p}" for p in positions],
        hovertemplate=hover,
    )


def _node_markers(graph: RouteGraph, selected: str | None, cols: dict) -> list[go.Scatter]:
    """One marker trace per node kind; the selected node is drawn larger and outlined."""
    traces = []
    for kind, (colour, symbol, label) in KIND_STYLE.items():
        nodes = [n for n in graph.nodes if n.kind == kind]
        if not nodes:
            continue
        xy = [node_xy(n, cols) for n in nodes]
        is_sel = [n.id == selected for n in nodes]
        marker = {
            "size": [20 if s else 13 for s in is_sel],
            "color": colour,
            "symbol": symbol,
            "line": {
                "width": [3 if s else 1 for s in is_sel],
                "color": ["black" if s else "white" for s in is_sel],
            },
        }
        hover = [
            f"{label}<br>{'' if n.layer is None else f'layer {n.layer}, '}position {n.pos} "
            f"'{token_label(graph.tokens[n.pos])}'<extra></extra>"
            for n in nodes
        ]
        traces.append(
            go.Scatter(
                x=[p[0] for p in xy], y=[p[1] for p in xy], mode="markers", name=label,
                customdata=[n.id for n in nodes], marker=marker, hovertemplate=hover,
            )
        )  # fmt: skip
    return traces


def column_labels(graph: RouteGraph, cols: dict[int, int]) -> list[str]:
    """Each column's token; when positions are collapsed, with its position, and "⋯" where
    positions were skipped before it."""
    if len(cols) == len(graph.tokens):
        return [token_label(t, 10) for t in graph.tokens]
    labels, previous = [], -1
    for p in sorted(cols):
        gap = "⋯ " if p != previous + 1 else ""
        labels.append(f"{gap}{p} {token_label(graph.tokens[p], 10)}")
        previous = p
    return labels


def _x_range(graph: RouteGraph, cols: dict[int, int]) -> list[float]:
    """Every column, or a window of WINDOW columns ending a little after the target's."""
    n = len(cols)
    if n <= WINDOW or n == len(graph.tokens):  # a short prompt is drawn whole
        return [-0.7, n - 0.3]
    right = min(n, cols[graph.target_positions[0]] + 4)
    return [right - WINDOW - 0.7, right - 0.3]


def _lay_out(fig, graph: RouteGraph, n_layers: int, title: str, height: int, cols) -> None:
    fig.update_layout(
        title=title,
        height=height,
        clickmode="event+select",
        dragmode="pan",
        margin={"l": 60, "r": 20, "t": 50, "b": 170},
        plot_bgcolor="white",
        # below the token labels: never over a node or the title
        legend={"orientation": "h", "y": -0.24, "yanchor": "top", "x": 0, "font": {"size": 11}},
        xaxis={
            "tickmode": "array",
            "tickvals": list(range(len(cols))),
            "range": _x_range(graph, cols),
            "ticktext": column_labels(graph, cols),
            "tickangle": -50,
            "showgrid": False,
            "zeroline": False,
        },
        yaxis={
            "tickmode": "array",  # every row: attention output, MLP, block output per layer
            "tickvals": [0]
            + [v for i in range(n_layers) for v in (2 * i + 1, 2 * i + 1.5, 2 * i + 2)],
            "ticktext": ["embedding"]
            + [t for i in range(n_layers) for t in (f"L{i} attn", f"L{i} MLP", f"L{i} out")],
            "tickfont": {"size": 10},
            "range": [-0.6, 2 * n_layers + 0.6],
            "showgrid": True,
            "gridcolor": "#eee",
            "zeroline": False,
            "title": "layer",
        },
    )
