"""Evidence that the demo model is a real, interpretable model; results go in its model card.

    python scripts/check_demo_model.py [--model lmtt/assets/demo-model] [--write-card]

1. Validation loss on the held-out 5% of Tiny Shakespeare against the unigram baseline.
2. Induction score of every head: on a random token sequence repeated twice, the attention from
   each token of the second copy to the token after its earlier occurrence (mean of 10 seeds).
3. lmtt routes for a token in the second copy of a repeated sequence must pass through the best
   induction head's block: an attention edge into that block at the target from the copy
   source (the token after the earlier occurrence). The target is the second-copy token where
   that head's copy attention is strongest; how often the edge clears the threshold over all
   second-copy tokens of 5 sequences is reported too.
Exits non-zero if a check fails.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_common import ROOT, SHAKESPEARE, finish_report  # noqa: E402

CORPUS = SHAKESPEARE
MARKER = "<!-- check_demo_model -->"


def validation_losses(model, text: str) -> tuple[float, float]:
    """(model loss, unigram cross-entropy) in nats/token on the last 5% of ``text``."""
    from lmtt.models.trace import run_trace

    split = int(len(text) * 0.95)
    tok = model.tokenizer
    train_ids = torch.tensor(tok(text[:split])["input_ids"])
    val_ids = torch.tensor(tok(text[split:])["input_ids"])
    counts = torch.bincount(train_ids, minlength=model.dims.d_vocab).double() + 1.0
    unigram = float(-(counts / counts.sum())[val_ids].log().mean())
    n_ctx, losses = model.dims.n_ctx, []
    for start in range(0, len(val_ids) - n_ctx, n_ctx):
        window = val_ids[start : start + n_ctx]
        logits = run_trace(model, window, capture={"resid_pre"}).logits
        losses.append(torch.nn.functional.cross_entropy(logits[:-1], window[1:]))
    return float(torch.stack(losses).mean()), unigram


def repeated_sequence(model, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    bos = model.encode("")[:1] if len(model.encode("")) else torch.tensor([0])
    random = torch.randint(1, model.dims.d_vocab, (n,), generator=gen)
    return torch.cat([bos, random, random])


def induction_scores(model, n: int = 50, seeds: int = 10) -> torch.Tensor:
    """[L, H] mean attention from second-copy tokens to the token after their first occurrence."""
    from lmtt.models.trace import run_trace

    d = model.dims
    scores = torch.zeros(d.n_layers, d.n_heads)
    second = torch.arange(1 + n, 1 + 2 * n)  # positions of the second copy (after BOS)
    for seed in range(seeds):
        trace = run_trace(model, repeated_sequence(model, n, seed), capture={"pattern"})
        for layer in range(d.n_layers):
            pattern = trace.pattern(layer)  # [H, T, T]
            scores[layer] += pattern[:, second, second - n + 1].mean(dim=-1) / seeds
    return scores


def copy_edge_weights(model, layers: list[int], n: int, seeds: int = 5) -> dict:
    """Per layer, the weight of the edge copy source -> that block at every second-copy token
    of ``seeds`` repeated sequences (each sequence traced once for all layers)."""
    from lmtt.flow.contributions import attention_contributions
    from lmtt.models.trace import run_trace

    out: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    targets = torch.arange(1 + n + 1, 1 + 2 * n)
    for seed in range(seeds):
        trace = run_trace(model, repeated_sequence(model, n, seed))
        for layer in layers:
            sources = attention_contributions(trace, layer, targets).sources
            out[layer].append(sources[torch.arange(len(targets)), targets - n + 1])
    return {layer: torch.cat(weights) for layer, weights in out.items()}


def loss_check(model) -> tuple[list[str], bool]:
    loss, unigram = validation_losses(model, CORPUS.read_text(encoding="utf-8"))
    passed = loss < unigram - 1.0
    return [
        "## Checks (`python scripts/check_demo_model.py`)",
        "",
        f"- validation loss {loss:.3f} nats/token vs unigram baseline {unigram:.3f}: "
        f"{'PASS' if passed else 'FAIL'} (must be at least 1 nat lower)",
    ], passed


def induction_check(model, scores: torch.Tensor) -> tuple[list[str], bool]:
    layer, head = divmod(int(scores.argmax()), model.dims.n_heads)
    passed = float(scores.max()) > 0.3
    lines = [
        f"- best induction head L{layer}H{head}, score {float(scores.max()):.3f}: "
        f"{'PASS' if passed else 'FAIL'} (must exceed 0.3)",
        "",
        "Induction score per head (rows: layers, columns: heads):",
        "",
        "| layer | " + " | ".join(f"H{h}" for h in range(model.dims.n_heads)) + " |",
        "|---|" + "---|" * model.dims.n_heads,
    ]
    for i, row in enumerate(scores.tolist()):
        lines.append(f"| {i} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    return lines, passed


def route_check(model, scores: torch.Tensor, n: int = 50) -> tuple[list[str], bool]:
    """Do the routes of the clearest induction event carry the copy-source edge?"""
    from lmtt.flow.graph import routes
    from lmtt.models.trace import run_trace

    layer, head = divmod(int(scores.argmax()), model.dims.n_heads)
    trace = run_trace(model, repeated_sequence(model, n, seed=100))
    second = torch.arange(1 + n + 1, 1 + 2 * n)
    # The clearest induction event: where the best head attends most to the copy source.
    copy_attention = trace.pattern(layer)[head, second, second - n + 1]
    target = int(second[copy_attention.argmax()])
    source = target - n + 1
    graph = routes(trace, [target], threshold=0.04)
    into_block = [
        e
        for e in graph.edges
        if e.kind == "attention" and e.target.layer == layer and e.target.pos == target
    ]
    passed = any(e.source.pos == source for e in into_block)
    lines = [
        "",
        f"- routes (threshold 0.04) for position {target} of a random 50-token sequence "
        f"repeated twice (the second-copy token where L{layer}H{head} attends most to its "
        f"copy source, attention {float(copy_attention.max()):.2f}) carry the edge from "
        f"the copy source, position {source} (the token after the earlier occurrence), "
        f"into block L{layer}: {'PASS' if passed else 'FAIL'}. {len(graph.nodes)} nodes, "
        f"{len(graph.edges)} edges; the attention edges into block L{layer} at position "
        f"{target}, with their three largest heads:",
        "",
    ]
    return lines + edge_lines(graph, into_block), passed


def edge_lines(graph, edges) -> list[str]:
    from lmtt.viz.text import node_label

    lines = []
    for e in sorted(edges, key=lambda e: -e.weight):
        heads = sorted(range(len(e.heads)), key=lambda h: -e.heads[h])[:3]
        split = ", ".join(f"H{h} {e.heads[h]:.3f}" for h in heads)
        lines.append(
            f"  - {node_label(e.source, graph.tokens)} -> "
            f"{node_label(e.target, graph.tokens)}: weight {e.weight:.3f} ({split})"
        )
    return lines


def copy_rate_lines(model, scores: torch.Tensor, n: int = 50) -> list[str]:
    lines = [
        "",
        "How often routes carry the copy-source edge, over every second-copy token of "
        "5 random repeated sequences (threshold 0.04):",
        "",
    ]
    layer = int(scores.argmax()) // model.dims.n_heads
    induction_layers = {i for i in range(model.dims.n_layers) if scores[i].max() > 0.3}
    for lay, weights in copy_edge_weights(model, sorted({layer, *induction_layers}), n).items():
        lines.append(
            f"  - block L{lay} (best head score {float(scores[lay].max()):.2f}): "
            f"median edge weight {float(weights.median()):.3f}, above 0.04 for "
            f"{float((weights > 0.04).float().mean()):.0%} of {len(weights)} tokens"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "lmtt" / "assets" / "demo-model"))
    parser.add_argument("--write-card", action="store_true", help="append results to README.md")
    args = parser.parse_args()
    if not CORPUS.is_file():
        sys.exit(f"check: the corpus {CORPUS} is missing (../shared/data)")

    from lmtt.models import load_model

    model = load_model(args.model, device="cpu")
    scores = induction_scores(model)
    lines, ok = [], True
    for check in (loss_check(model), induction_check(model, scores), route_check(model, scores)):
        lines += check[0]
        ok &= check[1]
    report = "\n".join(lines + copy_rate_lines(model, scores))
    return finish_report(report, ok, Path(args.model), MARKER, args.write_card)


if __name__ == "__main__":
    sys.exit(main())
