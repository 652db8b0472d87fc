"""Train lmtt's demo model: a small GPT-2 on Tiny Shakespeare, with its own byte-level BPE.

    python scripts/train_demo_model.py                       # writes lmtt/assets/demo-model
    python scripts/train_demo_model.py --out /tmp/m --steps 50 --force

Deterministic for a given seed and thread count. The last 5% of the text is held out for
validation. To teach the small model in-context copying within a CPU budget, a fraction of the
training windows (``--repeat-fraction``) hold a run of tokens drawn at random from the corpus
followed by its exact repeat (a Shakespeare passage would not do: the model memorises those and
predicts the repeat without copying); validation uses plain text only. Writes a standard
Hugging Face folder (config.json, model.safetensors, tokenizer.json, tokenizer config) and a
model card (README.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_common import (  # noqa: E402
    ROOT,
    lr_schedule,
    model_args,
    prepare_out,
    read_corpus,
    run_stats,
    save_run,
    sinusoids,
    unigram_baseline,
)
from training_common import SHAKESPEARE as DEFAULT_CORPUS  # noqa: E402

DEFAULT_OUT = ROOT / "lmtt" / "assets" / "demo-model"
EOT = "<|endoftext|>"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    model_args(p, heads=8, n_ctx=256, steps=4000, batch_size=16, lr=2e-3)
    p.add_argument("--repeat-fraction", type=float, default=0.5)
    p.add_argument("--dropout", type=float, default=0.1, help="residual and embedding dropout")
    args = p.parse_args(argv)
    args.out = args.out or DEFAULT_OUT
    return args


def train_tokenizer(text: str, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = text.splitlines(keepends=True)
    tok.train_from_iterator([lines[i : i + 1000] for i in range(0, len(lines), 1000)], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT
    )


def batches(ids, n_ctx: int, batch: int, repeat_fraction: float, gen):
    """Random training windows [batch, n_ctx + 1]. In a ``repeat_fraction`` of them, from a
    random point on, a run of 8-64 tokens drawn at random from the corpus repeats until the
    window ends: a sequence that cannot be memorised, so only in-context copying predicts it."""
    import torch

    n_repeat = int(round(batch * repeat_fraction))
    while True:
        starts = torch.randint(0, len(ids) - n_ctx - 1, (batch,), generator=gen)
        rows = torch.stack([ids[s : s + n_ctx + 1] for s in starts.tolist()])
        for r in range(n_repeat):
            length = int(torch.randint(8, 65, (1,), generator=gen))
            offset = int(torch.randint(0, (n_ctx + 1) // 2, (1,), generator=gen))
            seg = ids[torch.randint(0, len(ids), (length,), generator=gen)]
            span = n_ctx + 1 - offset
            rows[r, offset:] = seg.repeat(span // length + 1)[:span]
        yield rows


def evaluate(model, val_ids, n_ctx: int, max_windows: int = 64) -> float:
    import torch

    model.eval()
    losses = []
    with torch.no_grad():
        n = min(max_windows, (len(val_ids) - 1) // n_ctx)
        for w in range(n):
            chunk = val_ids[w * n_ctx : w * n_ctx + n_ctx + 1][None]
            out = model(chunk[:, :-1], labels=chunk[:, :-1])  # HF shifts labels itself
            losses.append(float(out.loss))
    model.train()
    return sum(losses) / len(losses)


def build_model(args, vocab: int):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab,
        n_positions=args.n_ctx,
        n_ctx=args.n_ctx,  # transformers 5 no longer writes it; readers of config.json expect it
        n_embd=args.d_model,
        n_layer=args.layers,
        n_head=args.heads,
        bos_token_id=0,
        eos_token_id=0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config)
    if args.sinusoidal_init:
        with torch.no_grad():  # trained afterwards; sinusoids make relative offsets easy to learn
            model.transformer.wpe.weight.copy_(0.1 * sinusoids(args.n_ctx, args.d_model))
    return model


def train(model, train_ids, val_ids, args) -> tuple[list[dict], int]:
    """The training loop; returns the evaluation history and the tokens seen."""
    import torch
    from tqdm import tqdm

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    lr_at = lr_schedule(args.lr, args.steps)
    gen = torch.Generator().manual_seed(args.seed)
    data = batches(train_ids, args.n_ctx, args.batch_size, args.repeat_fraction, gen)
    history = []
    bar = tqdm(range(args.steps), desc="train", unit="step")
    t0, seen = time.time(), 0
    model.train()
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        rows = next(data)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = model(rows[:, :-1], labels=rows[:, :-1]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seen += rows[:, :-1].numel()
        loss = loss.detach()
        bar.set_postfix(loss=f"{float(loss):.3f}", tok_s=f"{seen / (time.time() - t0):,.0f}")
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            val = evaluate(model, val_ids, args.n_ctx)
            history.append({"step": step + 1, "train_loss": float(loss), "val_loss": val})
            bar.write(f"step {step + 1}: train loss {float(loss):.3f}, val loss {val:.3f}")
    return history, seen


def main(argv=None) -> None:
    args = parse_args(argv)
    text = read_corpus(args.corpus)
    prepare_out(args.out, args.force)

    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    split = int(len(text) * 0.95)
    train_text, val_text = text[:split], text[split:]
    start = time.time()
    tokenizer = train_tokenizer(train_text, args.vocab_size)
    train_ids = torch.tensor(tokenizer(train_text)["input_ids"], dtype=torch.long)
    val_ids = torch.tensor(tokenizer(val_text)["input_ids"], dtype=torch.long)
    vocab = len(tokenizer)
    entropy, unigram_val = unigram_baseline(train_ids, val_ids, vocab)
    print(
        f"train: {len(train_ids):,} train / {len(val_ids):,} val tokens, vocab {vocab}; "
        f"unigram val cross-entropy {unigram_val:.3f} nats"
    )
    model = build_model(args, vocab)
    history, seen = train(model, train_ids, val_ids, args)
    minutes = (time.time() - start) / 60
    train_loss = evaluate_train(model, train_ids, args.n_ctx)
    val_loss = history[-1]["val_loss"]
    model.eval()
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    stats = run_stats(
        "train_demo_model.py", argv, minutes, model, train_ids, val_ids, args, seen,
        vocab=vocab, train_loss=round(train_loss, 4), val_loss=round(val_loss, 4),
        repeat_fraction=args.repeat_fraction, entropy=entropy, unigram_val=unigram_val,
        history=history,
    )  # fmt: skip
    save_run(
        args.out, stats, write_card, args, f"val loss {val_loss:.3f} vs unigram {unigram_val:.3f}"
    )


def evaluate_train(model, train_ids, n_ctx: int) -> float:
    """Loss on plain (unaugmented) training windows, comparable to the validation loss."""
    return evaluate(model, train_ids[-(64 * n_ctx + 1) :], n_ctx)


def write_card(out: Path, s: dict, args) -> None:
    rows = [
        (
            "architecture",
            f"GPT-2 ({args.layers} layers, {args.heads} heads, d_model "
            f"{args.d_model}, context {args.n_ctx}), {s['params']:,} parameters",
        ),
        (
            "tokenizer",
            f"byte-level BPE trained on the training text with `tokenizers`, "
            f"{s['vocab']} tokens, `{EOT}` as BOS/EOS",
        ),
        (
            "data",
            "Tiny Shakespeare (karpathy/char-rnn, public domain): first 95% of the "
            "characters train, last 5% validation",
        ),
        (
            "training",
            f"{s['steps']} steps x {s['batch_size']} windows of {args.n_ctx} tokens "
            f"({s['tokens_seen']:,} tokens), AdamW, cosine schedule, dropout {args.dropout}, "
            f"seed {s['seed']}, bf16 autocast {s['bf16']}; position embeddings initialised "
            f"with sinusoids (then trained); in {int(100 * s['repeat_fraction'])}% of windows, "
            "from a random point on, a run of 8-64 tokens drawn at random from the corpus "
            "repeats to the end of the window, so the model learns in-context copying "
            "(induction heads)",
        ),
        ("command", f"`{s['command']}`"),
        ("time", f"{s['minutes']} min on a {s['machine']} CPU"),
        ("final train loss", f"{s['train_loss']:.3f} nats/token (plain training text)"),
        ("final validation loss", f"{s['val_loss']:.3f} nats/token (first 64 windows)"),
        (
            "unigram baseline",
            f"{s['unigram_val_cross_entropy']:.3f} nats/token on validation "
            f"(train unigram entropy {s['unigram_entropy']:.3f})",
        ),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    card = f"""# lmtt demo model: a small GPT-2 trained on Tiny Shakespeare

A **small demo model** shipped with lmtt so that it explains real predictions offline. It is
not a general language model: it has seen only Shakespeare ({s["train_tokens"]:,} training
tokens) and writes Shakespeare-like text.

| | |
|---|---|
{table}

Licence: the weights are MIT like lmtt; the training text is in the public domain.

<!-- check_demo_model -->
"""
    (out / "README.md").write_text(card, encoding="utf-8")


if __name__ == "__main__":
    main()
