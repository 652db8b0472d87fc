"""The route graph: draw it and turn clicks into a selection."""

from __future__ import annotations

import streamlit as st

from lmtt.flow.graph import RouteGraph
from lmtt.ui import state
from lmtt.viz.graph_figure import TARGET_PICK, route_figure
from lmtt.viz.text import node_label, percent, token_label

CHART_KEY = "route_chart"


def _on_chart_select() -> None:
    """A click on a node or edge selects it; one on a column's triangle under the token axis
    makes that token the target."""
    points = state.chart_points(CHART_KEY)
    ids = [p.get("customdata") for p in points if isinstance(p.get("customdata"), str)]
    if ids and ids[0].startswith(TARGET_PICK):
        position = ids[0].removeprefix(TARGET_PICK)
        if position.isdecimal():  # a click's payload comes from the browser: numbers only
            state.pick_target(int(position))  # out of range: the picker falls back to its default
    elif ids:
        state.select(ids[0])


def element_options(graph: RouteGraph) -> dict[str, str]:
    """Every selectable element of the graph: id -> label (nodes first, top layer first)."""
    options = {n.id: node_label(n, graph.tokens) for n in reversed(graph.nodes)}
    for e in reversed(graph.edges):
        options[e.id] = (
            f"{e.kind} edge {node_label(e.source, graph.tokens)} → "
            f"{node_label(e.target, graph.tokens)} ({e.weight:.3f})"
        )
    return options


def graph_panel(
    graph: RouteGraph, n_layers: int, predicted: str | None, prob: float, foil: str = "",
    collapse: bool | None = None,
) -> None:  # fmt: skip
    """The graph; ``predicted`` is None for a model without a head to predict with; a
    ``foil`` makes the signed scores shares of logit(prediction) - logit(foil)."""
    target = graph.target_positions[0]
    what = "" if predicted is None else f" → predicts '{token_label(predicted)}' ({percent(prob)})"
    title = (
        f"Routes to position {target} '{token_label(graph.tokens[target])}'{what} · "
        f"{len(graph.edges)} edges · {graph.score} scores"
    )
    selected = state.selection()
    fig = route_figure(graph, n_layers, title=title, selected=selected, collapse=collapse,
                       pickers=True)  # fmt: skip
    st.plotly_chart(
        fig,
        key=CHART_KEY,
        on_select=_on_chart_select,
        selection_mode="points",
        config={"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}},
    )
    if graph.signed:
        metric = f"logit(prediction) - logit({foil!r})" if foil else "log p(prediction)"
        st.caption(
            f"Edge weights are {graph.score} shares of the span of {metric} (clean minus every "
            "edge removed); violet edges work against the prediction."
        )
    options = element_options(graph)
    if state.reconcile_selection(options):
        st.info(
            "The selected element is not on the routes at this threshold; lower the "
            "threshold to see it again, or pick another element."
        )
    st.selectbox(
        "inspect (or click a node or edge in the graph)",
        ["", *options],
        key=state.SELECTION,
        format_func=lambda i: options.get(i, "—"),
    )
