"""Benchmark: neuron indexing throughput next to plain forward throughput, same model and batch.

Both phases see the same windows of the same corpus (the first ``--tokens`` tokens). The
forward phase runs the model on the windows with no hooks and keeps nothing; the indexing
phase is the whole ``index_neurons`` job (tokenizing, forward with MLP hooks, top-k and
statistics, Parquet writes, checkpoints and the final tables). Prints a table and saves JSON.

    python scripts/bench_index.py                       # demo model over Tiny Shakespeare
    python scripts/bench_index.py --batch-sizes 8 32 --tokens 200000   # a prefix only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


def forward_throughput(model, corpus: str, window: int, batch: int, tokens: int | None) -> float:
    import torch

    from lmtt.corpus.readers import read_corpus
    from lmtt.corpus.windows import windows

    wins = list(windows(read_corpus(corpus), model.tokenizer, window, tokens))
    full = [w for w in wins if len(w.ids) == window]
    model.forward(torch.stack([w.ids for w in full[:batch]]))  # warm-up
    start = time.perf_counter()
    for i in range(0, len(full), batch):
        model.forward(torch.stack([w.ids for w in full[i : i + batch]]))
    seconds = time.perf_counter() - start
    return sum(w.n_corpus_tokens for w in full) / seconds


def index_throughput(model, corpus: str, window: int, batch: int, tokens: int | None) -> float:
    from lmtt.index.neuron_index import IndexSettings, index_neurons

    d = model.dims
    settings = IndexSettings(
        model.name, corpus, d.n_layers, d.d_mlp, window=window, batch_size=batch, max_tokens=tokens
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        state = index_neurons(model, corpus, Path(tmp) / "index", settings, progress=False)
        seconds = time.perf_counter() - start
    return state.tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lmtt-demo-shakespeare")
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared/data/tinyshakespeare"))
    parser.add_argument("--tokens", type=int, default=None, help="default: the whole corpus")
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(ROOT / "scripts/results/bench_index_cpu.json"))
    args = parser.parse_args()
    import torch

    from lmtt.models import load_model

    model = load_model(args.model, device=args.device)
    rows = []
    for batch in args.batch_sizes:
        fwd = forward_throughput(model, args.corpus, args.window, batch, args.tokens)
        idx = index_throughput(model, args.corpus, args.window, batch, args.tokens)
        rows.append({"batch": batch, "forward_tok_s": fwd, "index_tok_s": idx, "ratio": idx / fwd})
        print(f"batch {batch}: forward {fwd:,.0f} tok/s, indexing {idx:,.0f} tok/s", flush=True)
    size = "the whole corpus" if args.tokens is None else f"{args.tokens:,} tokens"
    print(f"\n{args.model} on {args.device}, {size}, window {args.window}")
    print("| batch | plain forward tok/s | indexing tok/s | indexing / forward |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['batch']} | {r['forward_tok_s']:,.0f} | {r['index_tok_s']:,.0f} | "
            f"{r['ratio']:.0%} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "model": args.model,
        "corpus": args.corpus,
        "tokens": args.tokens,
        "window": args.window,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "python": sys.version.split()[0],
    }
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
