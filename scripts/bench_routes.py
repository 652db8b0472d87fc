"""Benchmark: a plain transformers forward vs run_trace, lazy routes and the full graph.

For each family (default: GPT-2, Llama, GPT-NeoX), builds a random model of GPT-2-small shape
(12 layers, 12 heads, d_model 768, d_mlp 3072, the real GPT-2 vocabulary) as a Hugging Face
folder, then for each prompt length T measures every phase in a fresh subprocess (so each peak
RSS is that phase's own). The denominator of every ratio is ``hf``: a plain transformers
forward of the same model and tokens (sdpa attention, no hooks). Every phase reports the wall
time and the CPU time of its process; ``--threads 1`` (the default) makes them single-threaded
so the CPU time is the work itself, whatever else the machine does. Prints a table and saves
JSON in scripts/results/.

    python scripts/bench_routes.py                            # T = 256 and 1024 on the CPU
    python scripts/bench_routes.py --threads 2 --lengths 1024
    python scripts/bench_routes.py --device cuda --lengths 1024 4096
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
PHASES = ("hf", "trace", "lazy_routes", "full_graph")
FAMILIES = ("gpt2", "llama", "gpt_neox")


N_CTX = 8192  # the position table, stretched so every length fits
SHAPES = {  # GPT-2 small, and a tiny shape for a quick check (CI)
    "small": dict(n_layers=12, d_model=768, n_heads=12, n_kv_heads=12, d_mlp=3072),
    "tiny": dict(n_layers=2, d_model=64, n_heads=4, n_kv_heads=4, d_mlp=256),
    # Llama 3.2 1B's shape (grouped-query attention; the GPT-2 vocabulary): for a GPU
    "1b": dict(n_layers=16, d_model=2048, n_heads=32, n_kv_heads=8, d_mlp=8192),
}


def build_model(folder: Path, arch: str, shape: str = "small") -> None:
    from lmtt.testing import make_tiny_model

    if (folder / "model.safetensors").exists():
        return
    tokenizer = ROOT.parent / "shared" / "data" / "gpt2-tokenizer"
    if not tokenizer.is_dir():
        sys.exit(f"bench: the GPT-2 tokenizer is missing at {tokenizer} (../shared/data)")
    print(f"bench: writing a random {shape} {arch} model to {folder} ...", flush=True)
    make_tiny_model(folder, arch, n_ctx=N_CTX, init_std=0.02, tokenizer_folder=tokenizer,
                    **SHAPES[shape])  # fmt: skip


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _phase(phase: str, folder: str, tokens, device: str, dtype: str = "float32"):
    """The work of one phase, as a function to time (setup done here, outside the timing).
    On an accelerator the contribution kernel runs there too (the torch kernel)."""
    import torch

    from lmtt.flow.graph import build_graph, routes
    from lmtt.models import load_model
    from lmtt.models.trace import run_trace

    if phase == "hf":
        from transformers import AutoModelForCausalLM

        hf = AutoModelForCausalLM.from_pretrained(
            folder, attn_implementation="sdpa", dtype=getattr(torch, dtype)
        )
        hf = hf.eval().to(device)
        ids = tokens[None].to(device)
        return lambda: hf(ids)
    model = load_model(folder, device=device, dtype=dtype)
    kernel = None if device == "cpu" else device
    routes(run_trace(model, tokens[:16]), threshold=0.04, device=kernel)  # warm up, compile
    if phase == "trace":
        return lambda: run_trace(model, tokens)
    trace = run_trace(model, tokens)
    if phase == "lazy_routes":
        return lambda: routes(trace, [len(tokens) - 1], 0.04, device=kernel)
    return lambda: build_graph(trace, device=kernel)


def run_phase(folder: str, phase: str, T: int, device: str, repeats: int, dtype: str) -> dict:
    """Runs in the child process: one phase at one length; returns times and peak RSS (and
    peak GPU memory on CUDA)."""
    import torch

    gen = torch.Generator().manual_seed(T)
    tokens = torch.randint(0, 50257, (T,), generator=gen)
    work = _phase(phase, folder, tokens, device, dtype)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            work()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    out = {"wall": statistics.median(walls), "cpu": statistics.median(cpus),
           "peak_rss_mb": _peak_rss_mb()}  # fmt: skip
    if device.startswith("cuda"):
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def measure(folder: Path, arch: str, T: int, args) -> dict:
    """One row: every phase at length T, each in a fresh process (the full graph up to
    ``args.full_max`` tokens). Ratios divide CPU times on the CPU, wall times elsewhere."""
    device, threads = args.device, args.threads
    row = {"family": arch, "T": T, "dtype": args.dtype}
    for phase in PHASES[:-1] if args.full_max < T else PHASES:
        repeats = 3 if T <= 256 else 2 if T <= 2048 else 1
        cmd = [sys.executable, __file__, "--device", device, "--threads", str(threads),
               "--dtype", args.dtype,
               "--child", str(folder), phase, str(T), str(repeats)]  # fmt: skip
        # numba's kernels get the same thread count (its idle workers would spin otherwise)
        env = os.environ | {"OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads)}
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if done.returncode != 0:
            sys.exit(f"bench: {arch} {phase} at T={T} failed:\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        for key in ("wall", "cpu"):
            row[f"{phase}_{key}_s"] = round(result[key], 3)
        row[f"{phase}_peak_mb"] = round(result["peak_rss_mb"])
        if "peak_gpu_mb" in result:
            row[f"{phase}_peak_gpu_mb"] = round(result["peak_gpu_mb"])
        print(
            f"  {arch:9s} T={T:5d} {phase:12s} wall {result['wall']:8.3f} s  "
            f"cpu {result['cpu']:8.3f} s  peak {result['peak_rss_mb']:6.0f} MB",
            flush=True,
        )
    basis = "cpu" if device == "cpu" else "wall"
    for phase in PHASES[1:]:
        if f"{phase}_{basis}_s" in row:
            row[f"{phase}_over_hf"] = round(row[f"{phase}_{basis}_s"] / row[f"hf_{basis}_s"], 2)
    # what a user waits for: the trace, then the routes to the last token
    both = row[f"trace_{basis}_s"] + row[f"lazy_routes_{basis}_s"]
    row["trace_and_routes_over_hf"] = round(both / row[f"hf_{basis}_s"], 2)
    row["trace_and_routes_peak_mb"] = max(row["trace_peak_mb"], row["lazy_routes_peak_mb"])
    return row


def print_table(rows: list[dict], threads: int, basis: str = "cpu") -> None:
    """The rows' ``basis`` seconds ("cpu" on the CPU, "wall" on an accelerator)."""
    print("\n| family | T | hf s | run_trace s | lazy routes s | full graph s | trace / hf | "
          "trace + routes / hf | full / hf | peak MB (hf / trace + routes / full) |\n|"
          + "---|" * 10)  # fmt: skip
    for r in rows:
        full = f"{r[f'full_graph_{basis}_s']:.3f}" if f"full_graph_{basis}_s" in r else "-"
        print(
            f"| {r['family']} | {r['T']} | {r[f'hf_{basis}_s']:.3f} | "
            f"{r[f'trace_{basis}_s']:.3f} | {r[f'lazy_routes_{basis}_s']:.3f} | {full} | "
            f"{r['trace_over_hf']} | {r['trace_and_routes_over_hf']} | "
            f"{r.get('full_graph_over_hf', '-')} | {r['hf_peak_mb']} / "
            f"{r['trace_and_routes_peak_mb']} / {r.get('full_graph_peak_mb', '-')} |"
        )
    what = "CPU seconds" if basis == "cpu" else "wall seconds"
    print(f"({what} of each phase's process, {threads} thread(s); both in the JSON)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each phase")
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default="small",
        help="small: GPT-2 small; 1b: Llama 3.2 1B's shape (for a GPU)",
    )
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--full-max", type=int, default=2048,
                        help="measure the full graph only up to this length")  # fmt: skip
    parser.add_argument("--out", default=None, help="JSON path (default scripts/results/...)")
    parser.add_argument("--child", nargs=4, metavar=("FOLDER", "PHASE", "T", "REPEATS"))
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        folder, phase, T, repeats = args.child
        print(json.dumps(run_phase(folder, phase, int(T), args.device, int(repeats),
                                   args.dtype)))  # fmt: skip
        return
    rows = []
    for arch in args.families:
        folder = ROOT / "bench-results" / f"{arch}-{args.shape}-random-ctx{N_CTX}"
        build_model(folder, arch, args.shape)
        rows += [measure(folder, arch, T, args) for T in args.lengths]
    print_table(rows, args.threads, "cpu" if args.device == "cpu" else "wall")
    save_results(args.out, f"bench_routes_{args.device}.json", args, {"rows": rows})


def save_results(path, default_name: str, args, payload: dict) -> None:
    """Write ``payload`` with the machine's description as JSON (default scripts/results/)."""
    out = Path(path or ROOT / "scripts" / "results" / default_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(),
               "device": getattr(args, "device", "cpu"), "threads": args.threads}  # fmt: skip
    out.write_text(json.dumps({"machine": machine, **payload}, indent=2) + "\n")
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
