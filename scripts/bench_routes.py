"""Benchmark: plain forward vs run_trace vs lazy routes vs full graph, GPT-2-small shape.

Builds a random GPT-2-small-shaped model (12 layers, 12 heads, d_model 768, n_ctx 1024, the
real GPT-2 vocabulary) as a Hugging Face folder, then for each prompt length T measures every
phase in a fresh subprocess (so each peak RSS is that phase's own) and prints a table; the
results are saved as JSON.

    python scripts/bench_routes.py                 # T = 64, 256, 1024 on the CPU
    python scripts/bench_routes.py --device cuda --lengths 64 256 1024 4096
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
PHASES = ("forward", "trace", "lazy_routes", "full_graph")


def build_model(folder: Path, n_ctx: int) -> None:
    from lmtt.testing import make_tiny_model

    if (folder / "model.safetensors").exists():
        return
    tokenizer = ROOT.parent / "shared" / "data" / "gpt2-tokenizer"
    if not tokenizer.is_dir():
        sys.exit(f"bench: the GPT-2 tokenizer is missing at {tokenizer} (../shared/data)")
    print(f"bench: writing a random GPT-2-small-shaped model to {folder} ...", flush=True)
    make_tiny_model(
        folder,
        "gpt2",
        n_layers=12,
        d_model=768,
        n_heads=12,
        d_mlp=3072,
        n_ctx=n_ctx,
        init_std=0.02,
        tokenizer_folder=tokenizer,
    )


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_phase(folder: str, phase: str, T: int, device: str, repeats: int) -> dict:
    """Runs in the child process: one phase at one length; returns seconds and peak RSS."""
    import torch

    from lmtt.flow.graph import build_graph, routes
    from lmtt.models import load_model
    from lmtt.models.trace import run_trace

    model = load_model(folder, device=device)
    gen = torch.Generator().manual_seed(T)
    tokens = torch.randint(0, model.dims.d_vocab, (T,), generator=gen)
    warm = run_trace(model, tokens[:16])
    routes(warm, threshold=0.04)  # JIT-compile the kernel outside the timing
    trace = run_trace(model, tokens) if phase in ("lazy_routes", "full_graph") else None

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def once():
        if phase == "forward":
            with torch.inference_mode():
                model.bridge(tokens[None].to(model.device))
        elif phase == "trace":
            run_trace(model, tokens)
        elif phase == "lazy_routes":
            routes(trace, [T - 1], 0.04)
        else:
            build_graph(trace)
        sync()

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "peak_rss_mb": _peak_rss_mb()}


def measure(folder: Path, T: int, device: str) -> dict:
    """One row of the table: every phase at length T, each in a fresh process."""
    row = {"T": T}
    for phase in PHASES:
        repeats = 3 if T <= 256 else 1
        cmd = [sys.executable, __file__, "--device", device, "--child", str(folder), phase,
               str(T), str(repeats)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"bench: {phase} at T={T} failed:\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        row[f"{phase}_s"] = round(result["seconds"], 3)
        row[f"{phase}_peak_mb"] = round(result["peak_rss_mb"])
        print(
            f"  T={T:5d} {phase:12s} {result['seconds']:8.3f} s "
            f"peak {result['peak_rss_mb']:7.0f} MB",
            flush=True,
        )
    row["lazy_over_forward"] = round(row["lazy_routes_s"] / row["forward_s"], 2)
    row["full_over_forward"] = round(row["full_graph_s"] / row["forward_s"], 2)
    return row


def print_table(rows: list[dict]) -> None:
    header = (
        "| T | forward s | run_trace s | lazy routes s | full graph s | lazy / fwd | "
        "full / fwd | peak MB (fwd / trace / lazy / full) |"
    )
    print("\n" + header + "\n|" + "---|" * 8)
    for r in rows:
        print(
            f"| {r['T']} | {r['forward_s']:.3f} | {r['trace_s']:.3f} | "
            f"{r['lazy_routes_s']:.3f} | {r['full_graph_s']:.3f} | {r['lazy_over_forward']} | "
            f"{r['full_over_forward']} | {r['forward_peak_mb']} / {r['trace_peak_mb']} / "
            f"{r['lazy_routes_peak_mb']} / {r['full_graph_peak_mb']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-dir", default=str(ROOT / "bench-results" / "gpt2-small-random"))
    parser.add_argument("--out", default=None, help="JSON path (default scripts/results/...)")
    parser.add_argument("--child", nargs=4, metavar=("FOLDER", "PHASE", "T", "REPEATS"))
    args = parser.parse_args()
    if args.child:
        folder, phase, T, repeats = args.child
        print(json.dumps(run_phase(folder, phase, int(T), args.device, int(repeats))))
        return
    folder = Path(args.model_dir)
    build_model(folder, n_ctx=max(1024, max(args.lengths)))
    rows = [measure(folder, T, args.device) for T in args.lengths]
    print_table(rows)
    out = Path(args.out or ROOT / "scripts" / "results" / f"bench_routes_{args.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "device": args.device}
    out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
