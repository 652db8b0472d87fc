"""Benchmark: the query-key map for 2,000 corpus tokens (capture + normalise + projection).

python scripts/bench_qk_map.py                # all-MiniLM-L6-v2 over UD EWT, PCA and t-SNE
python scripts/bench_qk_map.py --methods pca tsne
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from lmtt.attention.qk_map import corpus_query_key_map
    from lmtt.models import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared/data/ud-english-ewt"))
    parser.add_argument("--layer", type=int, default=2)
    parser.add_argument("--head", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--methods", nargs="+", default=["pca", "tsne"])
    parser.add_argument("--out", default=str(ROOT / "scripts/results/bench_qk_map_cpu.json"))
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    rows = []
    for method in args.methods:
        start = time.perf_counter()  # reading, capture, normalisation and projection
        cm = corpus_query_key_map(model, args.corpus, args.layer, args.head, method, args.tokens)
        total = time.perf_counter() - start
        rows.append({"method": method, "tokens": cm.tokens, "points": len(cm.map.points),
                     "total_s": round(total, 2)})  # fmt: skip
    print("| method | tokens | points | total s |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['tokens']} | {r['points']} | {r['total_s']} |")
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
