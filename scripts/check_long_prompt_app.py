"""Does the app open a long prompt? A 4,000-token Tiny Shakespeare prompt on a random
GPT-2-small-shaped model (position table 8192, as bench_routes builds it), through the app's
own script (streamlit.testing, no browser): the first view, a click on the attention block at
the prediction, and a rerun, with their times and the process's peak memory.

    python scripts/bench_routes.py --families gpt2 --lengths 256   # builds the model once
    python scripts/check_long_prompt_app.py [--tokens 4000]

Prints the figures and saves JSON in scripts/results/long_prompt_app.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MODEL = ROOT / "bench-results" / "gpt2-small-random-ctx8192"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def long_prompt(n_tokens: int) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(DATA / "gpt2-tokenizer"))
    text = (DATA / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    ids = tokenizer(text[: n_tokens * 8])["input_ids"][:n_tokens]
    return tokenizer.decode(ids)


def timed(at, what: str, report: dict) -> None:
    start = time.perf_counter()
    at.run()
    report[f"{what}_s"] = round(time.perf_counter() - start, 2)
    report[f"{what}_errors"] = [e.value for e in at.error] + [str(e.value) for e in at.exception]
    print(f"{what}: {report[f'{what}_s']} s, errors: {report[f'{what}_errors'] or 'none'}")


def main() -> None:
    from streamlit.testing.v1 import AppTest

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=4000)
    p.add_argument("--model", type=Path, default=MODEL)
    p.add_argument(
        "--out", type=Path, default=ROOT / "scripts" / "results" / "long_prompt_app.json"
    )
    args = p.parse_args()
    if not (args.model / "config.json").exists():
        sys.exit(f"check: no model at {args.model}; build it with scripts/bench_routes.py first")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
    at.query_params["model"] = str(args.model.resolve())
    at.query_params["prompt"] = long_prompt(args.tokens)
    report: dict = {"model": str(args.model), "tokens": args.tokens}
    timed(at, "first_view", report)
    target = len(at.sidebar.selectbox(key="target").options) - 1
    report["charts"] = len(at.get("plotly_chart"))
    report["warnings"] = [w.value for w in at.warning]
    at.selectbox(key="selection").set_value(f"attn_out:11:{target}")
    timed(at, "attention_block", report)
    report["panels"] = [h.value for h in at.subheader]
    timed(at, "rerun", report)
    report["peak_rss_mb"] = round(_peak_mb())
    print(f"peak RSS {report['peak_rss_mb']} MB; panels: {report['panels']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
