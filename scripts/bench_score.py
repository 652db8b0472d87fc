"""Benchmark: one attention edge's score decomposition against one forward pass.

Builds a random model of GPT-2-small shape (as scripts/bench_routes.py) and, on T random
tokens, times a plain transformers forward (sdpa, no hooks: the denominator) and
``lmtt.flow.score.score_decomposition`` of the last layer's head 0 from the last query to
key T/2 (the deepest layer has the most parts: 1 + 11 x 14 on each side), with and without a
second key. The trace is made once beforehand (the app and ``lmtt qk`` reuse it). Goal
(issue 17): less than one forward pass at T = 1024. Prints a table, saves JSON.

    python scripts/bench_score.py [--tokens 1024] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from bench_routes import build_model, save_results  # noqa: E402
from bench_verify import hf_forward, timed  # noqa: E402


def measure(folder: Path, T: int) -> dict:
    import statistics

    import torch

    from lmtt.flow.score import score_decomposition, score_kinds
    from lmtt.models import load_model
    from lmtt.models.trace import run_trace

    tokens = torch.randint(0, 50257, (T,), generator=torch.Generator().manual_seed(T))
    row = {"T": T, "hf": hf_forward(folder, tokens, "cpu")}
    model = load_model(str(folder), "cpu")
    trace = run_trace(model, tokens, capture=score_kinds(model.family))
    L, q, k = model.dims.n_layers - 1, T - 1, T // 2
    score_decomposition(trace, L, 0, q, k)  # warm up
    for name, other in (("edge", None), ("contrast", k - 1)):
        runs = [timed(lambda o=other: score_decomposition(trace, L, 0, q, k, o), "cpu")
                for _ in range(3)]  # fmt: skip
        wall, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        row[name] = {"wall": wall, "cpu": cpu, "cpu_over_hf": cpu / row["hf"]["cpu"],
                     "wall_over_hf": wall / row["hf"]["wall"]}  # fmt: skip
    return row


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    folder = ROOT / "bench-results" / "gpt2-small-random"
    build_model(folder, "gpt2", n_ctx=1024)
    row = measure(folder, args.tokens)
    print(f"\nGPT-2-small shape, T={row['T']}, {args.threads} thread(s); denominator: a plain "
          f"transformers sdpa forward, {row['hf']['cpu']:.3f} s CPU")  # fmt: skip
    print("| work | CPU s | wall s | CPU / hf | wall / hf |\n|---|---|---|---|---|")
    for name in ("edge", "contrast"):
        r = row[name]
        print(f"| {name} | {r['cpu']:.3f} | {r['wall']:.3f} | {r['cpu_over_hf']:.2f} | "
              f"{r['wall_over_hf']:.2f} |")  # fmt: skip
    save_results(args.out, "bench_score_cpu.json", args, {"row": row})


if __name__ == "__main__":
    main()
