"""PNG and SVG download buttons for a view, drawn only when clicked; HTML shown in a frame."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

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


def html_frame(html: str, height: int) -> None:
    """Show a self-contained HTML page (scripts run in the browser) in an iframe.

    The page goes through a temporary file: ``st.iframe`` given the HTML as a string first
    tries to parse it as a URL, and Python's URL parser keeps its last 128 inputs, so large
    pages (a head view is megabytes) would pile up in the server's memory.
    """
    with tempfile.TemporaryDirectory(prefix="lmtt-frame-") as tmp:
        page = Path(tmp) / "view.html"
        page.write_text(html, encoding="utf-8")
        st.iframe(page, height=height)
