"""Load test: N browser sessions x M distinct prompts against a local app server.

Starts ``streamlit run app.py`` in hosted mode (or uses ``--url``), opens N headless Chromium
sessions at once, and has each submit M distinct prompts of about ``--tokens`` tokens, one
after the other. Reports errors (exceptions shown on the page, timeouts), the latency from
submitting a prompt to the finished page (median and p95), and the server's memory (resident
at start, peak, end), as a table and as JSON. Not a test: the timings are not asserted.

    python scripts/load_test.py --sessions 8 --prompts 5
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lmtt.ui.launch import app_server, memory_mb  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
TEXT = (
    "the king and queen of the realm rode out at dawn to meet their foes upon the field where "
    "many a noble heart would fall before the sun had set again"
)
WORDS = re.findall(r"\w+", TEXT)


def prompt(session: int, i: int, tokens: int) -> str:
    """A distinct prompt of about ``tokens`` tokens (the demo model: about a word each)."""
    rotate = (session * 31 + i * 7) % len(WORDS)
    words = (WORDS[rotate:] + WORDS[:rotate]) * (tokens // len(WORDS) + 1)
    return f"Session {session}, prompt {i}: " + " ".join(words[: max(1, tokens - 6)])


def _idle(page, timeout_ms: int = 120_000) -> None:
    page.wait_for_timeout(150)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms
    )


def _shared(page, marker: str, timeout_ms: int = 120_000) -> None:
    """Wait until the page's URL carries the new prompt (the run has reached the routes)."""
    page.wait_for_function(
        "m => decodeURIComponent(location.search.replace(/[+]/g, ' ')).includes(m)",
        arg=marker,
        timeout=timeout_ms,
    )


def session(url: str, n: int, prompts: int, tokens: int, out: dict) -> None:
    """One browser session: submit each prompt, wait for the finished page, note the time."""
    from playwright.sync_api import sync_playwright

    latencies, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(url)
            _idle(page)
            box = page.get_by_label("prompt", exact=True)
            for i in range(prompts):
                box.fill(prompt(n, i, tokens))
                start = time.perf_counter()
                box.press("Control+Enter")
                try:
                    _shared(page, f"Session {n}, prompt {i}:")
                    _idle(page)
                except Exception as e:  # noqa: BLE001 - a timeout is counted, not raised
                    errors.append(f"session {n} prompt {i}: {type(e).__name__}")
                    continue
                latencies.append(time.perf_counter() - start)
                shown = page.locator("[data-testid='stException']").count()
                if shown:
                    errors.append(f"session {n} prompt {i}: an exception on the page")
        finally:
            browser.close()
    out[n] = {"latencies": latencies, "errors": errors}


def sample_memory(pid: int, stop: threading.Event, peak: list) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], memory_mb(pid)[0])
        stop.wait(0.2)


def run(url: str, pid: int, sessions: int, prompts: int, tokens: int) -> dict:
    start_mb = memory_mb(pid)[0]
    stop, peak = threading.Event(), [start_mb]
    sampler = threading.Thread(target=sample_memory, args=(pid, stop, peak), daemon=True)
    sampler.start()
    results: dict = {}
    workers = [threading.Thread(target=session, args=(url, n, prompts, tokens, results))
               for n in range(sessions)]  # fmt: skip
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    lat = sorted(x for r in results.values() for x in r["latencies"])
    errors = [e for r in results.values() for e in r["errors"]]
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else float("nan")
    return {
        "sessions": sessions, "prompts": prompts, "tokens": tokens, "runs": len(lat),
        "errors": len(errors), "error_list": errors[:20], "wall_s": round(wall, 1),
        "median_s": round(statistics.median(lat), 2) if lat else None, "p95_s": round(p95, 2),
        "server_start_mb": round(start_mb), "server_peak_mb": round(peak[0]),
        "server_end_mb": round(memory_mb(pid)[0]),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=5, help="distinct prompts per session")
    parser.add_argument("--tokens", type=int, default=60, help="about this many tokens each")
    parser.add_argument("--cache-mb", type=float, default=256)
    parser.add_argument("--ceiling-mb", type=float, default=None, help="fail above this peak")
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE",
                        help="more environment for the server")  # fmt: skip
    args = parser.parse_args()
    env = {**dict(e.split("=", 1) for e in args.env), "LMTT_MODE": "hosted",
           "LMTT_CACHE_MB": str(args.cache_mb),
           "LMTT_RUNS_PER_MINUTE": "100000", "LMTT_MAX_PROMPT_TOKENS": "256"}  # fmt: skip
    with app_server(env) as (url, pid):
        result = run(url, pid, args.sessions, args.prompts, args.tokens)
    result |= {"cache_mb": args.cache_mb, "machine": f"{platform.machine()}, "
               f"{__import__('os').cpu_count()} CPUs"}  # fmt: skip
    print(
        "| sessions x prompts | tokens | errors | median s | p95 s | server MB start / peak / end |"
    )
    print("|---|---|---|---|---|---|")
    print(f"| {args.sessions} x {args.prompts} | {args.tokens} | {result['errors']} | "
          f"{result['median_s']} | {result['p95_s']} | {result['server_start_mb']} / "
          f"{result['server_peak_mb']} / {result['server_end_mb']} |")  # fmt: skip
    for e in result["error_list"]:
        print("error:", e)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    over = args.ceiling_mb is not None and result["server_peak_mb"] > args.ceiling_mb
    return 1 if result["errors"] or over else 0


if __name__ == "__main__":
    sys.exit(main())
