"""Benchmark: verifying the routes' edges and the faithfulness curve, in forward passes.

Builds a random model of GPT-2-small shape (12 layers, 12 heads, d_model 768, the real GPT-2
vocabulary; as scripts/bench_routes.py) and, on T random tokens, measures:

- ``hf``: a plain transformers forward (sdpa, no hooks) of the same model and tokens: the
  denominator of every ratio;
- ``verify``: every edge of the default routes (proximity, threshold 0.04) knocked out, one
  batch row per edge (``lmtt.causal.edges.knockout_effects``);
- ``curve``: completeness and share lost of the routes at 10 thresholds
  (``lmtt.causal.faithfulness``: 21 batch rows with the baseline);
- ``verified``: the default routes of the app (verify, then keep the edges with an effect).

For each it counts the forward calls (batched passes), the rows they ran and the blocks each
row ran (a decoder's batch starts at its lowest edited layer), and reports CPU seconds over the
``hf`` forward's. The goals of issue 16: verifying E edges in at most E/16 + 2 forward calls,
the curve in at most 12. On a CPU a batch row costs about what a whole forward pass does, so
the time ratio follows the rows, not the calls; on a GPU a batch of 16 costs about one pass.

    python scripts/bench_verify.py [--tokens 256] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from bench_routes import build_model, save_results  # noqa: E402


class Counter:
    """Counts the forward calls of lmtt.causal (wrapping run_edited where it is used)."""

    def __init__(self, n_layers: int):
        self.n_layers, self.calls, self.rows, self.block_rows = n_layers, 0, 0, 0

    def wrap(self, fn):
        def counted(model, inputs, *args, **kwargs):
            start = kwargs.get("start_layer", args[1] if len(args) > 1 else 0)
            self.calls += 1
            self.rows += inputs.shape[0]
            self.block_rows += inputs.shape[0] * (self.n_layers - start)
            return fn(model, inputs, *args, **kwargs)

        return counted

    def reset(self) -> dict:
        out = {"calls": self.calls, "rows": self.rows,
               "forward_equivalents_by_blocks": self.block_rows / self.n_layers}  # fmt: skip
        self.calls = self.rows = self.block_rows = 0
        return out


def timed(work, device: str) -> tuple[float, float]:
    import torch

    start, cpu = time.perf_counter(), time.process_time()
    work()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu


def hf_forward(folder: Path, tokens, device: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa").eval().to(device)
    ids = tokens[None].to(device)
    with torch.inference_mode():
        hf(ids)  # warm up
        times = [timed(lambda: hf(ids), device) for _ in range(3)]
    return {"wall": statistics.median(t[0] for t in times),
            "cpu": statistics.median(t[1] for t in times)}  # fmt: skip


def measure(folder: Path, T: int, device: str) -> dict:
    import torch

    import lmtt.causal.faithfulness as F
    import lmtt.causal.run as R
    from lmtt.causal.edges import knockout_effects
    from lmtt.causal.faithfulness import CURVE, faithfulness
    from lmtt.causal.metric import make_metric
    from lmtt.causal.scored import route_graphs
    from lmtt.models import load_model
    from lmtt.models.trace import run_trace

    tokens = torch.randint(0, 50257, (T,), generator=torch.Generator().manual_seed(T))
    row = {"T": T, "hf": hf_forward(folder, tokens, device)}
    model = load_model(str(folder), device=device)
    counter = Counter(model.dims.n_layers)
    R.run_edited, F.run_edited = counter.wrap(R.run_edited), counter.wrap(F.run_edited)
    trace = run_trace(model, tokens)
    metric = make_metric(model, trace)
    graph, *curve = route_graphs(model, trace, metric, [0.04, *CURVE], "proximity")
    knockout_effects(model, trace, graph.edges[:4], metric)  # warm up
    counter.reset()
    work = {
        "verify": lambda: knockout_effects(model, trace, graph.edges, metric),
        "curve": lambda: faithfulness(model, trace, curve, metric),
        "verified": lambda: route_graphs(model, trace, metric, [0.04], "verified"),
    }
    row["edges"] = len(graph.edges)
    for name, fn in work.items():
        wall, cpu = timed(fn, device)
        row[name] = {"wall": wall, "cpu": cpu, **counter.reset()}
        row[name]["cpu_over_hf"] = cpu / row["hf"]["cpu"]
        row[name]["wall_over_hf"] = wall / row["hf"]["wall"]
    row["verify"]["goal_calls"] = row["edges"] / 16 + 2
    row["curve"]["goal_calls"] = 12
    return row


def print_table(row: dict, threads: int) -> None:
    print(f"\nGPT-2-small shape, T={row['T']}, {row['edges']} route edges (threshold 0.04); "
          f"hf forward {row['hf']['cpu']:.3f} s CPU, {row['hf']['wall']:.3f} s wall")  # fmt: skip
    print("| work | forward calls | goal | batch rows | forward equivalents (blocks run) | "
          "CPU s | CPU / hf | wall / hf |\n|" + "---|" * 8)  # fmt: skip
    for name in ("verify", "curve", "verified"):
        r = row[name]
        goal = f"<= {r['goal_calls']:.1f}" if "goal_calls" in r else ""
        print(f"| {name} | {r['calls']} | {goal} | {r['rows']} | "
              f"{r['forward_equivalents_by_blocks']:.1f} | {r['cpu']:.2f} | "
              f"{r['cpu_over_hf']:.1f} | {r['wall_over_hf']:.1f} |")  # fmt: skip
    print(f"({threads} torch thread(s); the denominator is a plain transformers sdpa forward)")


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="JSON path (default scripts/results/...)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    folder = ROOT / "bench-results" / "gpt2-small-random"
    build_model(folder, "gpt2", n_ctx=1024)
    row = measure(folder, args.tokens, args.device)
    print_table(row, args.threads)
    save_results(args.out, f"bench_verify_{args.device}.json", args, {"row": row})


if __name__ == "__main__":
    main()
