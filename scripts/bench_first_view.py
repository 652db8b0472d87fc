"""Benchmark: how long a new browser session waits for its first route graph.

    python scripts/bench_first_view.py [--sessions 5]

Starts two servers side by side (lmtt.ui.launch.app_server): the lmtt app on the demo model
and, as the floor, a bare Streamlit page drawing one Plotly chart with a title (Streamlit's
own page load, websocket and one chart, nothing of lmtt). For each, opens ``--sessions``
fresh browser contexts in Debian's Chromium (Playwright) and times ``goto`` until the
chart's title is drawn. The first lmtt session (which loads the model and traces the
default prompt) is reported apart. Prints a table and saves JSON to
``scripts/results/first_view.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLOOR_APP = """import plotly.graph_objects as go
import streamlit as st

st.title("floor")
st.plotly_chart(go.Figure(go.Scatter(x=[0, 1], y=[0, 1]), layout={"title": "Routes to"}))
"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def _first_chart_s(browser, url: str, title: str) -> float:
    """Seconds from a fresh context's ``goto`` to a chart title containing ``title``."""
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_function(
        "t => [...document.querySelectorAll('.gtitle')].some(e => e.textContent.includes(t))",
        arg=title,
        timeout=180_000,
    )
    seconds = time.perf_counter() - start
    page.context.close()
    return seconds


def main() -> None:
    from playwright.sync_api import sync_playwright

    from lmtt.ui.launch import app_server

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=5)
    p.add_argument("--out", type=Path, default=ROOT / "scripts" / "results" / "first_view.json")
    args = p.parse_args()
    floor_app = Path(tempfile.mkdtemp(prefix="lmtt-first-view-")) / "floor.py"
    floor_app.write_text(FLOOR_APP, encoding="utf-8")
    rows = {}
    floor, lmtt_app = app_server(script=floor_app), app_server()
    with floor as (floor_url, _), lmtt_app as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        cold = _first_chart_s(browser, url, "Routes to position")  # loads, traces, caches
        for name, target in (("floor", floor_url), ("lmtt", url)):
            times = [_first_chart_s(browser, target, "Routes to") for _ in range(args.sessions)]
            rows[name] = {
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
                "all_s": [round(t, 3) for t in times],
            }
        browser.close()
    result = {
        "sessions": args.sessions,
        "lmtt_first_session_s": round(cold, 3),
        **rows,
        "lmtt_over_floor": round(rows["lmtt"]["median_s"] / rows["floor"]["median_s"], 2),
    }
    print("| page | new session, median s | min s |\n|---|---|---|")
    for name in ("floor", "lmtt"):
        print(f"| {name} | {rows[name]['median_s']} | {rows[name]['min_s']} |")
    print(
        f"(the first lmtt session, which loads the model: {cold:.2f} s; lmtt / floor "
        f"{result['lmtt_over_floor']}x)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
