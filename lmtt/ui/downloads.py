"""PNG and SVG download buttons for a view, drawn only when clicked."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from lmtt.viz import static


def downloads(label: str, key: str, figure: Callable, svg: Callable[[], str] | None = None) -> None:
    """PNG and SVG buttons. ``figure`` (a callable returning a matplotlib figure) is drawn only
    when a button is clicked, not on every rerun; ``svg`` (a callable returning SVG text)
    replaces the figure's SVG."""

    def png_data() -> bytes:
        return static.figure_bytes(figure())

    def svg_data() -> bytes:
        return svg().encode() if svg is not None else static.figure_bytes(figure(), "svg")

    a, b = st.columns(2)
    a.download_button(f"{label} PNG", png_data, f"{key}.png", "image/png", key=f"{key}_png")
    b.download_button(f"{label} SVG", svg_data, f"{key}.svg", "image/svg+xml", key=f"{key}_svg")
