"""Evidence that the masked-LM demo model is a real masked LM; results go in its model card.

    python scripts/check_demo_mlm.py [--model lmtt/assets/demo-mlm] [--write-card]

1. Held-out masked-token loss and accuracy (15% of the tokens masked, seed 0, every masked
   token replaced by [MASK]) on the last 5% of Tiny Shakespeare and on the UD English EWT
   test sentences (never trained on), against a unigram baseline from the training text:
   the model must beat it by at least 1 nat and double its accuracy.
2. The top fillers of five example sentences.
3. Per head, the mean attention from each word token to the previous token, the next token,
   [SEP] and [CLS] on the EWT test sentences: the patterns the per-head diagrams show.
Exits non-zero if check 1 fails.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_demo_mlm import EWT, conllu_text  # noqa: E402
from training_common import ROOT, SHAKESPEARE, SHARED, finish_report  # noqa: E402

EWT_TEST = SHARED / "ud-english-ewt" / "en_ewt-ud-test.conllu"
MARKER = "<!-- check_demo_mlm -->"
EXAMPLES = [
    "First Citizen: Before we [MASK] any further, hear me speak.",
    "O Romeo, Romeo! wherefore art [MASK] Romeo?",
    "To be, or not to [MASK]: that is the question.",
    "I will send you the [MASK] tomorrow morning.",
    "The king is dead; long live the [MASK]!",
]


def body(model, text: str) -> torch.Tensor:
    return torch.tensor(model.tokenizer(text, add_special_tokens=False)["input_ids"])


def shakespeare_windows(model, n_ctx: int = 128) -> list[torch.Tensor]:
    """Consecutive ``[CLS] ... [SEP]`` windows over the held-out 5% of Tiny Shakespeare."""
    text = SHAKESPEARE.read_text(encoding="utf-8")
    ids = body(model, text[int(len(text) * 0.95) :])
    cls, sep = model.tokenizer.cls_token_id, model.tokenizer.sep_token_id
    size = n_ctx - 2
    return [
        torch.cat([torch.tensor([cls]), ids[s : s + size], torch.tensor([sep])])
        for s in range(0, len(ids) - size + 1, size)
    ]


def ewt_sentences(model, limit: int | None = None) -> list[torch.Tensor]:
    """The EWT test sentences as ``[CLS] s [SEP]`` (the few longer than the context left out)."""
    sentences = conllu_text(EWT_TEST).splitlines()[:limit]
    encoded = [torch.tensor(model.tokenizer(s)["input_ids"]) for s in sentences if s.strip()]
    return [tokens for tokens in encoded if len(tokens) <= model.dims.n_ctx]


def train_unigram(model) -> torch.Tensor:
    """[V] add-one-smoothed unigram probabilities of the training text (as the training
    script builds it)."""
    text = SHAKESPEARE.read_text(encoding="utf-8")
    train_text = text[: int(len(text) * 0.95)] + "\n" + conllu_text(EWT)
    counts = torch.bincount(body(model, train_text), minlength=len(model.tokenizer))
    counts = counts.double() + 1.0
    return counts / counts.sum()


def score_lines(model, name: str, windows, unigram) -> tuple[list[str], bool]:
    from lmtt.attention.masked_lm import masked_token_score

    s = masked_token_score(model, windows)
    uni_loss = float(-unigram[s.labels].log().mean())
    uni_acc = float((s.labels == unigram.argmax()).double().mean())
    passed = s.loss < uni_loss - 1.0 and s.accuracy > 2 * uni_acc
    return [
        f"| {name} | {s.masked:,} | {s.loss:.3f} | {100 * s.accuracy:.1f}% | {uni_loss:.3f} "
        f"| {100 * uni_acc:.1f}% | {'PASS' if passed else 'FAIL'} |"
    ], passed


def filler_lines(model) -> list[str]:
    from lmtt.attention.masked_lm import predict_masks

    lines = ["", "Top fillers (probability):", ""]
    for sentence in EXAMPLES:
        (pred,) = predict_masks(model, sentence, k=5)
        fillers = ", ".join(f"{t} {p:.2f}" for t, p in pred.fillers)
        lines.append(f"- `{sentence}` → {fillers}")
    return lines


def head_patterns(model, sentences) -> torch.Tensor:
    """[L, H, 4] mean attention from word tokens to previous, next, [SEP], [CLS]."""
    from lmtt.models.trace import run_trace

    d = model.dims
    total, count = torch.zeros(d.n_layers, d.n_heads, 4), 0
    for tokens in sentences:
        if len(tokens) < 4:
            continue
        trace = run_trace(model, tokens, capture={"pattern"})
        words = torch.arange(1, len(tokens) - 1)
        rows = torch.arange(len(words))
        for layer in range(d.n_layers):
            p = trace.pattern(layer)[:, words]  # [H, W, T]: from word tokens
            to = [p[:, rows, words - 1], p[:, rows, words + 1], p[..., -1], p[..., 0]]
            total[layer] += torch.stack([t.sum(-1) for t in to], dim=-1)
        count += len(words)
    return total / count


def pattern_lines(scores: torch.Tensor) -> list[str]:
    names = ["previous token", "next token", "[SEP]", "[CLS]"]
    lines = [
        "",
        "Mean attention from word tokens (EWT test sentences) per head; ** marks > 0.5:",
        "",
        "| head | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for layer, row in enumerate(scores):
        for head, values in enumerate(row.tolist()):
            cells = [f"**{v:.2f}**" if v > 0.5 else f"{v:.2f}" for v in values]
            lines.append(f"| L{layer}H{head} | " + " | ".join(cells) + " |")
    best = []
    for i, name in enumerate(names):
        layer, head = divmod(int(scores[..., i].argmax()), scores.shape[1])
        best.append(f"{name}: L{layer}H{head} ({float(scores[layer, head, i]):.2f})")
    return lines + ["", "Strongest head per pattern: " + "; ".join(best) + "."]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "lmtt" / "assets" / "demo-mlm"))
    parser.add_argument("--write-card", action="store_true", help="write results into README.md")
    args = parser.parse_args()
    for path in (SHAKESPEARE, EWT, EWT_TEST):
        if not path.is_file():
            sys.exit(f"check: {path} is missing (../shared/data)")

    from lmtt.models import load_model

    model = load_model(args.model, device="cpu")
    unigram = train_unigram(model)
    lines = [
        "## Checks (`python scripts/check_demo_mlm.py`)",
        "",
        "Held-out masked-token prediction (15% masked, seed 0) against the training text's "
        "unigram distribution (must be at least 1 nat lower and twice as accurate):",
        "",
        "| held-out text | masked tokens | loss (nats) | accuracy | unigram loss "
        "| unigram accuracy | |",
        "|---|---|---|---|---|---|---|",
    ]
    ok = True
    for name, windows in (
        ("Tiny Shakespeare, last 5%", shakespeare_windows(model)),
        ("UD EWT test sentences", ewt_sentences(model)),
    ):
        row, passed = score_lines(model, name, windows, unigram)
        lines += row
        ok &= passed
    lines += filler_lines(model)
    lines += pattern_lines(head_patterns(model, ewt_sentences(model, limit=300)))
    report = "\n".join(lines)
    return finish_report(report, ok, Path(args.model), MARKER, args.write_card)


if __name__ == "__main__":
    sys.exit(main())
