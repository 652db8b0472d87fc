"""Benchmark: ``lmtt batch`` prompts/s on the demo model, batched vs one prompt at a time.

    python scripts/bench_batch.py [--prompts 500] [--batch-size 16] [--threads 2] [--repeats 3]

The prompts are the first ``--prompts`` speeches of Tiny Shakespeare with 32 to 64 tokens
(cut to 64). Each setting runs the whole job (traces, routes, head and neuron contributions,
Parquet writes) into a fresh folder, in this process; the two settings take turns,
``--repeats`` times (this machine is shared and noisy), and the table gives the median wall
and CPU time and prompts/s (and the prompts/s of the traces alone, the job's forward passes
without the analysis, and of a plain transformers forward of the same chunks: the floor),
with each turn's ratio. The batched run's tables are checked equal to
the one-at-a-time run's (to float rounding). Then the job runs as 2 Ray shards on 2 local
workers (``--no-ray`` skips it), its tables checked equal to the single run's. JSON in
scripts/results/bench_batch_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
DEMO = ROOT / "lmtt" / "assets" / "demo-model"


def shakespeare_prompts(model, n: int) -> list[str]:
    out = []
    for speech in CORPUS.read_text(encoding="utf-8").split("\n\n"):
        ids = model.tokenizer(speech)["input_ids"]
        if len(ids) >= 32:
            out.append(model.tokenizer.decode(ids[:64]).replace("\n", " "))
        if len(out) == n:
            break
    return out


def timed_run(model, prompts_file: Path, folder: Path, batch_size: int) -> dict:
    from lmtt.index.batch import BatchSettings, run_batch

    settings = BatchSettings(batch_size=batch_size)
    start, cpu = time.perf_counter(), time.process_time()
    run_batch(model, prompts_file, folder, settings, progress=False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"batch_size": batch_size, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


def traces_only(model, prompts: list[str], batch_size: int) -> float:
    """Prompts/s of the job's forward passes alone (stacked, chunks in order of length,
    unembedding the targets only)."""
    from lmtt.models.batched import stack_traces
    from lmtt.models.trace import prepare_tokens, route_kinds

    tokens = sorted((prepare_tokens(model, p) for p in prompts), key=len)
    start = time.perf_counter()
    for i in range(0, len(tokens), batch_size):
        chunk = tokens[i : i + batch_size]
        kinds = route_kinds(model, max(len(t) for t in chunk))
        stack_traces(model, chunk, kinds, [len(t) - 1 for t in chunk])
    return round(len(prompts) / (time.perf_counter() - start), 2)


def plain_forward(prompts: list[str], tokenizer_model, batch_size: int) -> float:
    """Prompts/s of a plain transformers forward (sdpa, no hooks) of the same prompts and
    chunks (right-padded, every position unembedded): the floor."""
    import torch
    from transformers import AutoModelForCausalLM

    from lmtt.models.trace import prepare_tokens

    hf = AutoModelForCausalLM.from_pretrained(DEMO, attn_implementation="sdpa").eval()
    tokens = sorted((prepare_tokens(tokenizer_model, p) for p in prompts), key=len)
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(tokens), batch_size):
            chunk = tokens[i : i + batch_size]
            batch = torch.zeros(len(chunk), max(len(t) for t in chunk), dtype=torch.long)
            for row, t in enumerate(chunk):
                batch[row, : len(t)] = t
            hf(batch)
    return round(len(prompts) / (time.perf_counter() - start), 2)


def padding_shares(model, prompts: list[str], batch_size: int) -> dict:
    """The share of the padded passes that is padding, chunks in file order and by length."""
    from lmtt.models.trace import prepare_tokens

    lengths = [len(prepare_tokens(model, p)) for p in prompts]

    def share(order: list[int]) -> float:
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        return round(1 - sum(lengths) / sum(len(c) * max(c) for c in chunks), 3)

    return {"file_order": share(lengths), "by_length": share(sorted(lengths))}


def _median(runs: list[dict]) -> dict:
    middle = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
    return middle | {"wall_s_all": [r["wall_s"] for r in runs]}


def _heads(folder: Path):
    from lmtt.index.batch_store import open_batch

    return open_batch(folder).sql("SELECT * FROM heads ORDER BY prompt_id, layer, head")


def ray_run(prompts_file: Path, folder: Path, batch_size: int, single: Path) -> dict:
    """The job as 2 Ray shards on 2 local workers (1 CPU each; Ray's start and each worker's
    model load included), its tables checked against the single run's."""
    from lmtt.index.batch import BatchSettings, run_batch_on_ray

    start = time.perf_counter()
    run_batch_on_ray(str(DEMO), prompts_file, folder, BatchSettings(batch_size=batch_size), 2)
    wall = time.perf_counter() - start
    got, want = _heads(folder), _heads(single)
    keys = ["prompt_id", "layer", "head"]
    same = len(got) == len(want) and bool((got[keys].values == want[keys].values).all())
    gap = float((got.contribution - want.contribution).abs().max()) if same else float("nan")
    return {"workers": 2, "wall_s": round(wall, 2), "same_rows": same,
            "max_head_difference": gap}  # fmt: skip


def measure(model, work: Path, args) -> dict:
    """The turns of both settings, the traces alone and the Ray run."""
    prompts_file = work / "prompts.txt"
    prompts_file.write_text("\n".join(shakespeare_prompts(model, args.prompts)) + "\n")
    timed_run(model, prompts_file, work / "warm", 4)  # compile, warm up
    sizes, turns = (1, args.batch_size), {1: [], args.batch_size: []}
    for turn in range(args.repeats):  # the settings take turns: noise hits both alike
        for b in sizes:
            turns[b].append(timed_run(model, prompts_file, work / f"b{b}-{turn}", b))
    rows = [_median(turns[b]) for b in sizes]
    texts = prompts_file.read_text().splitlines()
    for r in rows:
        r["traces_only_prompts_per_s"] = traces_only(model, texts, r["batch_size"])
        r["hf_prompts_per_s"] = plain_forward(texts, model, r["batch_size"])
        r["prompts_per_s"] = round(args.prompts / r["wall_s"], 2)
        r["job_time_over_hf"] = round(r["hf_prompts_per_s"] / r["prompts_per_s"], 2)
    heads = [_heads(work / f"b{b}-0") for b in sizes]
    gap = float((heads[0].contribution - heads[1].contribution).abs().max())
    single = work / f"b{args.batch_size}-0"
    ray = ray_run(prompts_file, work / "ray", args.batch_size, single) if args.ray else None
    if ray:
        ray["prompts_per_s"] = round(args.prompts / ray["wall_s"], 2)
    per_turn = [round(a["wall_s"] / b["wall_s"], 2) for a, b in zip(*turns.values(), strict=True)]
    padding = padding_shares(model, texts, args.batch_size)
    return {"prompts": args.prompts, "threads": args.threads, "repeats": args.repeats,
            "padding_share": padding, "rows": rows,
            "speedup": round(rows[0]["wall_s"] / rows[1]["wall_s"], 2),
            "speedup_each_turn": per_turn, "max_head_difference": gap, "ray": ray}  # fmt: skip


def main() -> None:
    import torch

    from lmtt.models import load_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-ray", dest="ray", action="store_false", help="skip the Ray run")
    p.add_argument(
        "--out", type=Path, default=ROOT / "scripts" / "results" / "bench_batch_cpu.json"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(str(DEMO), "cpu")
    work = Path(tempfile.mkdtemp(prefix="lmtt-bench-batch-"))
    try:
        report = measure(model, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.prompts} prompts of 32-64 tokens, demo model, {args.threads} thread(s)")
    print("| batch size | wall s | CPU s | prompts/s | traces alone, prompts/s | hf forward, "
          "prompts/s | job time / hf |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for r in report["rows"]:
        print(f"| {r['batch_size']} | {r['wall_s']} | {r['cpu_s']} | {r['prompts_per_s']} | "
              f"{r['traces_only_prompts_per_s']} | {r['hf_prompts_per_s']} | "
              f"{r['job_time_over_hf']} |")  # fmt: skip
    print(f"batched / one at a time (medians): {report['speedup']}x; each turn: "
          f"{report['speedup_each_turn']}; largest head-contribution difference "
          f"{report['max_head_difference']:.2e}")  # fmt: skip
    print(f"padding in the batched passes: {report['padding_share']['by_length']:.1%} "
          f"(chunks in file order: {report['padding_share']['file_order']:.1%})")  # fmt: skip
    if report["ray"]:
        r = report["ray"]
        print(f"Ray, 2 local workers: {r['wall_s']} s ({r['prompts_per_s']} prompts/s, Ray's "
              f"start included); rows equal to the single run: {r['same_rows']} (largest "
              f"difference {r['max_head_difference']:.2e})")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
