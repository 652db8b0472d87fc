"""Are the routes true? Each edge score against measured knockout effects, on 10 prompts.

    python scripts/eval_routes.py [--model lmtt/assets/demo-model] [--threshold 0.04]

The prompts are 10 speeches from the held-out last 5% of Tiny Shakespeare (every tenth one
with at least 48 tokens, cut to its first 48 tokens); the prediction explained is the model's
top next token at the last position, the metric its log-probability. For each score
(proximity, attribution, knockout, verified, read) the routes at the threshold are built,
every edge of them is knocked out in a real forward pass, and the script reports:

- edges: how many the routes keep;
- completeness: the share of the metric's span (clean minus every edge removed) kept when
  only the routes are kept; share lost: when only the routes are removed;
- without effect: edges whose knockout moves the metric by less than 1% of the span;
- Spearman: rank correlation of each graph's edges' |score| with their |measured effect| alone
  (every other edge in place). For knockout routes it is 1 by construction (a check); for
  verified routes the score is the effect within the routes (everything else removed), so this
  compares an edge's effect there with its effect alone. The attribution scores are also
  ranked over the proximity routes' edges.

Prints a table and saves JSON in scripts/results/eval_routes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
SCORES = ("proximity", "attribution", "knockout", "verified", "read")


def held_out_prompts(model, text: str, n: int = 10, length: int = 48) -> list[str]:
    """``n`` speeches of the held-out 5%, each cut to its first ``length`` tokens."""
    speeches = [s for s in text[int(len(text) * 0.95) :].split("\n\n") if s.strip()]
    long = [s for s in speeches if len(model.tokenizer(s)["input_ids"]) >= length]
    chosen = long[:: max(1, len(long) // n)][:n]
    return [model.tokenizer.decode(model.tokenizer(s)["input_ids"][:length]) for s in chosen]


def evaluate_prompt(model, prompt: str, threshold: float, min_share: float) -> dict:
    from lmtt.causal.compare import measured, spearman
    from lmtt.causal.edges import verify_edges
    from lmtt.causal.faithfulness import faithfulness
    from lmtt.causal.metric import make_metric
    from lmtt.causal.scored import route_graphs
    from lmtt.models.trace import run_trace

    trace = run_trace(model, prompt)
    metric = make_metric(model, trace)
    graphs = {s: route_graphs(model, trace, metric, [threshold], s)[0] for s in SCORES}
    f = faithfulness(model, trace, list(graphs.values()), metric)
    span = f.clean - f.baseline
    row = {"prompt": prompt, "target": trace.vocab[metric.target], "clean": f.clean,
           "baseline": f.baseline}  # fmt: skip
    for i, (score, graph) in enumerate(graphs.items()):
        effects = verify_edges(model, trace, graph, metric)
        size = effects.effect.abs()
        weights = torch.tensor([abs(e.weight) for e in graph.edges])
        row[score] = {
            "edges": len(graph.edges),
            "completeness": f.completeness[i],
            "share_lost": f.complement[i],
            "without_effect": int((~measured(effects, span, min_share)).sum()),
            "spearman_own": spearman(weights, size),
        }
        if score == "proximity":  # the other scores on the same (default) edges
            row[score]["spearman_attribution"] = spearman(effects.attribution.abs(), size)
    return row


def _median(values: list[float]) -> float:
    """The median of the defined values (a Spearman of fewer than 3 edges is nan)."""
    defined = [v for v in values if v == v]
    return statistics.median(defined) if defined else float("nan")


def summary(rows: list[dict]) -> dict:
    out = {}
    for score in SCORES:
        keys = rows[0][score].keys()
        out[score] = {k: _median([r[score][k] for r in rows]) for k in keys}
    return out


def print_table(rows: list[dict], med: dict, threshold: float) -> None:
    print(f"\nroutes at threshold {threshold}; median over {len(rows)} prompts")
    header = ("score", "edges", "completeness", "share lost", "without effect",
              "Spearman |score| vs |effect|")  # fmt: skip
    print(" | ".join(header))
    for score in SCORES:
        m = med[score]
        print(f"{score} | {m['edges']:.0f} | {m['completeness']:.3f} | {m['share_lost']:.3f} | "
              f"{m['without_effect']:.0f} | {m['spearman_own']:.2f}")  # fmt: skip
    print(
        "attribution scores on the proximity routes' edges: Spearman |attribution| vs |effect| "
        f"{med['proximity']['spearman_attribution']:.2f}"
    )


def main(argv=None) -> None:
    from tqdm import tqdm

    from lmtt.models import load_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "lmtt" / "assets" / "demo-model"))
    p.add_argument("--threshold", type=float, default=0.04)
    p.add_argument("--min-share", type=float, default=0.01)
    p.add_argument("--out", type=Path, default=ROOT / "scripts" / "results" / "eval_routes.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.model, "cpu")
    prompts = held_out_prompts(model, CORPUS.read_text(encoding="utf-8"))
    rows = [evaluate_prompt(model, q, args.threshold, args.min_share)
            for q in tqdm(prompts, desc="prompts")]  # fmt: skip
    med = summary(rows)
    print_table(rows, med, args.threshold)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"model": args.model, "threshold": args.threshold, "min_share": args.min_share,
              "median": med, "prompts": rows}  # fmt: skip
    strict = json.loads(json.dumps(report), parse_constant=lambda _: None)  # NaN -> null
    args.out.write_text(json.dumps(strict, indent=1) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
