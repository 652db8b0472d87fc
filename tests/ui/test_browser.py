"""End to end in a real browser: Debian's Chromium driven by Playwright against the app.

Starts ``streamlit run app.py`` on 127.0.0.1, enters a prompt, clicks a graph node, checks that
the panel shows logit-lens tokens, saves screenshots and the measured timings (not asserted)
under ``test-output/`` (or ``$LMTT_TEST_OUTPUT``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from lmtt.ui.launch import app_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PROMPT = (
    "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and "
    "Juliet is the sun.\nArise, fair sun, and kill the envious"
)
OUTPUT = Path(os.environ.get("LMTT_TEST_OUTPUT", ROOT / "test-output"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def context_index(shared_data, tmp_path_factory) -> Path:
    """A small context index of UD English EWT for the default (demo) model."""
    from lmtt.index.context_index import build_context_index
    from lmtt.models import load_model
    from lmtt.models.catalog import load_model_catalog

    model = load_model(load_model_catalog().default, device="cpu")
    corpus = shared_data / "ud-english-ewt" / "en_ewt-ud-test.conllu"
    out = tmp_path_factory.mktemp("ctx") / "index"
    build_context_index(model, corpus, out, layers=[2, 4], max_tokens=3000, progress=False)
    return out


def need_chromium() -> None:
    """The browser tests fail, never skip, without Chromium (the README's set-up installs
    it; `-m "not browser"` leaves them out on purpose)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: sudo apt-get install chromium (see the README's "
                    "set-up), or leave the browser tests out with -m 'not browser'")  # fmt: skip


WAIT = {"ms": 60_000}  # every wait's timeout: set from a measured baseline (the fixture)


def _measure_baseline() -> None:
    """Scale the waits to this machine's speed now: 300 times a demo-model trace of a fixed
    prompt, never under 60 s (a busy machine gets longer waits, a quiet one the floor)."""
    from lmtt.models import load_model
    from lmtt.models.catalog import load_model_catalog
    from lmtt.models.trace import run_trace

    model = load_model(load_model_catalog().default, device="cpu")
    run_trace(model, "First Citizen: Before we proceed")  # warm
    start = time.perf_counter()
    run_trace(model, "First Citizen: Before we proceed any further, hear me speak.")
    WAIT["ms"] = int(max(60_000, 300 * 1000 * (time.perf_counter() - start)))


@pytest.fixture(scope="module")
def server(context_index):
    need_chromium()
    _measure_baseline()
    with app_server({"LMTT_CONTEXT_INDEX": str(context_index)}) as (url, _):
        yield url


def _wait_title(page, text: str) -> None:
    """Wait for the route graph's title (SVG text) to contain ``text``."""
    page.wait_for_function(
        "t => [...document.querySelectorAll('.gtitle')].some(e => e.textContent.includes(t))",
        arg=text,
        timeout=2 * WAIT["ms"],  # a cold first run
    )


def _wait_idle(page) -> None:
    """Wait until Streamlit finished the current run (its status widget is gone)."""
    page.wait_for_timeout(150)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=WAIT["ms"]
    )


EXPORT_SECONDS: dict[str, float] = {}  # click to file, per export: test-output/, not asserted


def _download(page, button: str, starts: bytes) -> None:
    """Click a download button and check the file's first bytes (PNG magic or an SVG tag);
    the seconds from the click to the file go to EXPORT_SECONDS."""
    start = time.perf_counter()
    with page.expect_download(timeout=WAIT["ms"]) as download:
        page.get_by_role("button", name=button).click()
    data = Path(download.value.path()).read_bytes()
    EXPORT_SECONDS[button] = round(time.perf_counter() - start, 3)
    assert starts in data[:400], (button, data[:80])


def _click_subplot(page, layer: int, head: int, n_heads: int) -> None:
    """Click the middle of one small heatmap of the model view (plotly subplot x{n}y{n})."""
    n = layer * n_heads + head + 1
    axis = "xy" if n == 1 else f"x{n}y{n}"
    drag = page.locator(f".stPlotlyChart .draglayer .{axis} .nsewdrag").first
    drag.wait_for(timeout=WAIT["ms"])
    box = drag.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_prompt_click_node_shows_lens(server):
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    timings = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(server)
        _wait_title(page, "Routes to position")  # the default model is loaded and warm

        prompt_box = page.get_by_label("prompt", exact=True)
        prompt_box.fill(PROMPT)
        start = time.perf_counter()
        prompt_box.press("Control+Enter")
        _wait_title(page, "envious' →")  # the new prompt's last token
        timings["first_graph_visible_s"] = round(time.perf_counter() - start, 3)
        _wait_idle(page)
        timings["first_graph_s"] = round(time.perf_counter() - start, 3)

        slider = page.get_by_role("slider").first
        slider.focus()
        start = time.perf_counter()
        slider.press("ArrowRight")
        _wait_idle(page)
        timings["threshold_rerender_s"] = round(time.perf_counter() - start, 3)

        # The last node trace holds the block outputs; the first of its points is a residual
        # node on the routes. Clicking it selects it and opens its panel.
        points = page.locator(".scatterlayer .trace").last.locator(".points path")
        points.last.wait_for(state="visible", timeout=WAIT["ms"])  # the chart is drawn again
        points.last.click(force=True)
        page.get_by_text("Residual state").first.wait_for(timeout=WAIT["ms"])
        _wait_idle(page)
        panel_text = page.locator("[data-testid='stMain']").inner_text()
        assert "Logit lens" in panel_text
        grid = page.locator("[data-testid='stDataFrame']").first
        grid.wait_for(timeout=WAIT["ms"])
        page.screenshot(path=str(OUTPUT / "app-browser.png"), full_page=False)
        cell = "[data-testid='stDataFrame'] [role='gridcell']"
        page.locator(cell).first.wait_for(state="attached", timeout=WAIT["ms"])
        # The grid is drawn on a canvas; its accessible table holds the same text.
        cells = page.evaluate(
            f'() => [...document.querySelectorAll("{cell}")].map(e => e.textContent)'
        )
        assert any("%" in c for c in cells), cells[:20]  # token probabilities in the lens
        # A click on the triangle under a token makes it the target: the routes to its
        # prediction are drawn (and the sidebar's picker follows)
        picker = page.evaluate(
            "() => { const gd = document.querySelector('.js-plotly-plot');"
            " const i = gd.data.findIndex(t => t.name === 'pick the target');"
            " return [i, gd.data[i].customdata[0]]; }"
        )
        assert picker[0] >= 0, "no target pickers on the graph"
        position = picker[1].removeprefix("target:")
        page.locator(".scatterlayer .trace").nth(picker[0]).locator(".points path").first.click(
            force=True
        )
        _wait_title(page, f"Routes to position {position} ")
        _wait_idle(page)
        # A new session (a fresh browser context) on the default prompt: recorded, not asserted
        fresh = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        start = time.perf_counter()
        fresh.goto(server)
        _wait_title(fresh, "Routes to position")
        timings["new_session_first_graph_s"] = round(time.perf_counter() - start, 3)
        browser.close()
    (OUTPUT / "browser-timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"browser timings: {timings}")


def test_two_browser_sessions_at_once_see_their_own_prompts(server):
    from urllib.parse import quote

    from playwright.sync_api import sync_playwright

    prompts = {
        "romeo": "ROMEO:\nIt is the east, and Juliet is the",
        "king": "KING RICHARD III:\nNow is the",
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pages = {}
        for name, prompt in prompts.items():  # two contexts: two independent sessions
            page = browser.new_context().new_page()
            page.goto(f"{server}/?prompt={quote(prompt)}")
            pages[name] = page
        for page in pages.values():
            _wait_title(page, "Routes to position")
            _wait_idle(page)
        titles = {
            name: page.evaluate("() => document.querySelector('.gtitle').textContent")
            for name, page in pages.items()
        }
        assert "'␣the' →" in titles["romeo"] and "'␣the' →" in titles["king"]
        assert "Juliet" in pages["romeo"].get_by_label("prompt", exact=True).input_value()
        assert "RICHARD" in pages["king"].get_by_label("prompt", exact=True).input_value()
        # Changing one session's threshold leaves the other untouched.
        slider = pages["romeo"].get_by_role("slider").first
        slider.focus()
        for _ in range(20):
            slider.press("ArrowRight")
        _wait_idle(pages["romeo"])
        king_title = pages["king"].evaluate("() => document.querySelector('.gtitle').textContent")
        assert king_title == titles["king"]
        king, romeo = (
            pages[n].get_by_role("slider").first.input_value() for n in ("king", "romeo")
        )  # fmt: skip (an <input type="range">)
        assert float(king) == 0.04 and float(romeo) > 0.04  # only romeo's threshold moved
        browser.close()


def test_every_attention_tab_opens_and_renders(server):
    """Open each tab and each attention view in Chromium and save a screenshot of it."""
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(server)
        _wait_title(page, "Routes to position")
        page.get_by_role("tab", name="Attention").click()
        _wait_idle(page)
        head_view = page.frame_locator("iframe").first.locator("svg.lmtt-head-view")
        head_view.wait_for(timeout=WAIT["ms"])
        every = head_view.locator("line").count()
        shown = head_view.locator("line:not([style*='display: none'])").count()
        assert 0 < shown < every  # the picked head (0) at the picked query only
        page.screenshot(path=str(OUTPUT / "tab-head-view.png"))
        _download(page, "head view PNG", b"\x89PNG")
        _download(page, "head view SVG", b"<svg")
        for view, marker in (
            ("model view", "L0 H0 attention"),
            ("q·k breakdown", "query × key"),
            ("query-key map", "Queries and keys of"),
        ):
            page.get_by_text(view, exact=True).click()
            _wait_idle(page)
            page.get_by_text(marker).first.wait_for(timeout=WAIT["ms"])
            if view == "model view":  # clicking a small heatmap opens it large
                _click_subplot(page, layer=2, head=3, n_heads=8)
                page.get_by_text("L2 H3 attention").first.wait_for(timeout=WAIT["ms"])
                _wait_idle(page)
            page.screenshot(path=str(OUTPUT / f"tab-{view.split()[0].replace('·', '')}.png"))
            label = {"model view": "model view", "q·k breakdown": "q·k"}.get(view, view)
            _download(page, f"{label} PNG", b"\x89PNG")  # exports are drawn only when clicked
            _download(page, f"{label} SVG", b"<svg")
        page.get_by_role("tab", name="Heads").click()  # the head catalogue of the demo model
        page.get_by_text("Head L").first.wait_for(timeout=WAIT["ms"])
        _wait_idle(page)
        assert page.locator(".scatterlayer .point").count() >= 32  # every head, 4 x 8
        page.screenshot(path=str(OUTPUT / "tab-heads.png"), full_page=True)
        page.get_by_role("tab", name="Masked LM").click()  # the GPT has no MLM head: the demo MLM
        page.get_by_text("lmtt-demo-mlm").first.wait_for(timeout=WAIT["ms"])
        _wait_idle(page)
        page.screenshot(path=str(OUTPUT / "tab-masked-lm.png"))
        page.get_by_role("tab", name="Context search").click()  # LMTT_CONTEXT_INDEX is set
        page.get_by_text("UPOS of the 50 matches").first.wait_for(timeout=WAIT["ms"])
        _wait_idle(page)
        page.screenshot(path=str(OUTPUT / "tab-context-search.png"), full_page=True)
        _download(page, "histograms PNG", b"\x89PNG")
        browser.close()
    (OUTPUT / "export-timings.json").write_text(json.dumps(EXPORT_SECONDS, indent=2) + "\n")
    print(f"export timings: {EXPORT_SECONDS}")


def test_an_edge_and_its_panel_side_by_side_at_1440x900(server):
    """The graph and the selected edge's panel are on one 1440x900 screen, side by side."""
    from urllib.parse import quote

    from playwright.sync_api import sync_playwright

    from lmtt.config import example_prompts
    from lmtt.flow.graph import routes
    from lmtt.models import load_model
    from lmtt.models.catalog import load_model_catalog
    from lmtt.models.trace import run_trace

    prompt = example_prompts()[0]
    trace = run_trace(load_model(load_model_catalog().default, device="cpu"), prompt)
    edge = next(e for e in routes(trace, threshold=0.04).edges if e.kind == "attention")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{server}/?prompt={quote(prompt)}&score=proximity&sel={quote(edge.id)}")
        _wait_title(page, "Routes to position")
        heading = page.locator("strong", has_text="Attention edge").first  # its own tab
        heading.wait_for(timeout=WAIT["ms"])
        _wait_idle(page)
        graph = page.locator(".stPlotlyChart").first.bounding_box()
        panel = heading.bounding_box()
        assert panel["x"] > graph["x"] + 0.9 * graph["width"]  # beside the graph, not below
        assert panel["y"] < 900 and graph["y"] < 900  # both on the first screen
        page.screenshot(path=str(OUTPUT / "app-edge-1440x900.png"))
        browser.close()
