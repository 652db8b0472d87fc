"""What the demo models' training scripts share: reading the text, the output folder, the
learning-rate schedule, the unigram baseline and resumable checkpoints."""

from __future__ import annotations

import math
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SHAKESPEARE = SHARED / "tinyshakespeare" / "input.txt"


def read_corpus(path: Path) -> str:
    if not path.is_file():
        sys.exit(f"train: corpus {path} does not exist (expected ../shared/data/tinyshakespeare)")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        sys.exit(f"train: corpus {path} is empty; give a text file with the training text")
    return text


def prepare_out(out: Path, force: bool, resumable: bool = False) -> None:
    """Create ``out``; an existing model folder needs ``force`` (a folder holding only an
    unfinished run's checkpoint is resumed when ``resumable``)."""
    if out.exists() and any(out.iterdir()):
        only_checkpoint = {p.name for p in out.iterdir()} <= {CHECKPOINT}
        if resumable and only_checkpoint and not force:
            return
        if not force:
            sys.exit(f"train: {out} already holds a model; pass --force to overwrite it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def lr_schedule(peak: float, steps: int):
    """Linear warm-up over the first 5% of steps, then cosine decay to 10% of the peak."""
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return peak * (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    return lr_at


def sinusoids(n: int, d: int):
    """The original Transformer's sinusoidal position encodings [n, d]."""
    import torch

    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(-torch.arange(0, d, 2, dtype=torch.float32) * (9.2103 / d))  # 10000^(-2i/d)
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


def unigram_baseline(train_ids, val_ids, vocab: int) -> tuple[float, float]:
    """(entropy of the train unigram distribution, its cross-entropy on validation) in nats."""
    import torch

    counts = torch.bincount(train_ids, minlength=vocab).double() + 1.0  # add-one smoothing
    p = counts / counts.sum()
    entropy = float(-(p * p.log()).sum())
    cross = float(-p[val_ids].log().mean())
    return entropy, cross


CHECKPOINT = "checkpoint.pt"


def save_checkpoint(out: Path, state: dict) -> None:
    """Atomically save a run's state (a crash leaves the previous checkpoint)."""
    import torch

    tmp = out / (CHECKPOINT + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out / CHECKPOINT)


def load_checkpoint(out: Path) -> dict | None:
    import torch

    path = out / CHECKPOINT
    return torch.load(path, weights_only=False) if path.is_file() else None


def model_args(p, heads: int, n_ctx: int, steps: int, batch_size: int, lr: float) -> None:
    """The options both demo trainings share (their defaults differ where given)."""
    import argparse

    p.add_argument("--out", type=Path, required=False)
    p.add_argument("--force", action="store_true", help="overwrite an existing model folder")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=heads)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-ctx", type=int, default=n_ctx)
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument(
        "--sinusoidal-init",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="initialise the (trained) position embeddings with sinusoids",
    )
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (fast on AMX CPUs)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=500)


def write_card_section(folder: Path, marker: str, report: str) -> Path:
    """Replace what follows ``marker`` in the model card ``folder/README.md`` by ``report``."""
    card = Path(folder) / "README.md"
    text = card.read_text(encoding="utf-8")
    head_part = text.split(marker)[0] if marker in text else text
    card.write_text(f"{head_part}{marker}\n{report}\n", encoding="utf-8")
    return card


def finish_report(report: str, ok: bool, folder: Path, marker: str, write: bool) -> int:
    """Print a check script's report (into the model card with ``write``); its exit code."""
    print(report)
    if write:
        print(f"\nwrote the checks into {write_card_section(folder, marker, report)}")
    return 0 if ok else 1


def run_stats(script: str, argv, minutes: float, model, train_ids, val_ids, args, seen,
              **own) -> dict:  # fmt: skip
    """What both training scripts record in training.json, with their ``own`` entries
    (among them ``entropy``, ``unigram_val`` and ``history``)."""
    import platform

    history, entropy, unigram_val = own.pop("history"), own.pop("entropy"), own.pop("unigram_val")
    command = f"python scripts/{script} " + " ".join(sys.argv[1:] if argv is None else argv)
    return {
        "command": command.strip(),
        "minutes": round(minutes, 1),
        "params": sum(p.numel() for p in model.parameters()),
        "train_tokens": len(train_ids),
        "val_tokens": len(val_ids),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "n_ctx": args.n_ctx,
        "tokens_seen": seen,
        **own,
        "unigram_entropy": round(entropy, 4),
        "unigram_val_cross_entropy": round(unigram_val, 4),
        "bf16": args.bf16,
        "seed": args.seed,
        "machine": f"{platform.machine()}, {args.threads} threads",
        "history": history,
    }


def save_run(out: Path, stats: dict, write_card, args, loss_text: str) -> None:
    """Write training.json and the model card, and say what was written."""
    import json

    (out / "training.json").write_text(json.dumps(stats, indent=2) + "\n")
    write_card(out, stats, args)
    print(f"train: done in {stats['minutes']:.1f} min; {loss_text}; wrote {out}")
