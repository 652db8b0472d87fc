"""Train lmtt's masked-LM demo model: a small BERT on Tiny Shakespeare and UD English EWT.

    python scripts/train_demo_mlm.py                  # writes lmtt/assets/demo-mlm
    python scripts/train_demo_mlm.py --out /tmp/m --steps 50 --force

A 4-layer BertForMaskedLM with its own lowercase WordPiece vocabulary, trained with 15% masking
(80% [MASK], 10% a random token, 10% unchanged). The last 5% of Tiny Shakespeare is held out.
Deterministic for a given seed and thread count; resumable: an interrupted run leaves
``checkpoint.pt`` in the output folder and the same command continues from it. Windows are
``[CLS] text [SEP]``, half of them full length and half of a random shorter length, so the
model sees [SEP] at every position a typed sentence puts it. Weights are saved in float16
(half the size; the config says float32 so plain ``from_pretrained`` loads them in float32).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_common import (  # noqa: E402
    ROOT,
    SHAKESPEARE,
    SHARED,
    load_checkpoint,
    lr_schedule,
    model_args,
    prepare_out,
    read_corpus,
    run_stats,
    save_checkpoint,
    save_run,
    sinusoids,
    unigram_baseline,
)

DEFAULT_OUT = ROOT / "lmtt" / "assets" / "demo-mlm"
EWT = SHARED / "ud-english-ewt" / "en_ewt-ud-dev.conllu"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=SHAKESPEARE)
    p.add_argument("--ewt", type=Path, default=EWT, help="CoNLL-U file whose text is added")
    model_args(p, heads=4, n_ctx=128, steps=8000, batch_size=32, lr=1e-3)
    p.add_argument("--d-mlp", type=int, default=512)
    p.add_argument("--mask-rate", type=float, default=0.15)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument(
        "--stop-after",
        type=int,
        default=None,
        metavar="STEP",
        help="stop at this step, leaving a checkpoint the same command resumes from",
    )
    args = p.parse_args(argv)
    args.out = args.out or DEFAULT_OUT
    return args


def conllu_text(path: Path) -> str:
    """The sentences of a CoNLL-U file (its ``# text =`` lines), one per line."""
    if not path.is_file():
        sys.exit(f"train: {path} does not exist (expected ../shared/data/ud-english-ewt)")
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(ln[len("# text = ") :] for ln in lines if ln.startswith("# text = "))


def train_tokenizer(text: str, vocab_size: int):
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False
    )
    lines = text.splitlines()
    tok.train_from_iterator([lines[i : i + 1000] for i in range(0, len(lines), 1000)], trainer)
    # The trainer numbers tokens of equal count in hash order, which changes between runs;
    # WordPiece splits by longest match whatever the ids, so number them in a fixed order.
    learned = sorted(set(tok.get_vocab()) - set(SPECIALS), key=lambda t: (len(t), t))
    vocab = {token: i for i, token in enumerate(SPECIALS + learned)}
    tok.model = models.WordPiece(vocab=vocab, unk_token="[UNK]")
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return BertTokenizerFast(tokenizer_object=tok, do_lower_case=True)


def body_ids(tokenizer, text: str):
    """Token ids of ``text`` without [CLS]/[SEP] (a stream the windows are cut from)."""
    import torch

    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)


def window_batch(ids, n_ctx: int, batch: int, tokenizer, gen):
    """[batch, T] windows ``[CLS] body [SEP]``: T = n_ctx for half the batches, else a random
    length from 8 to n_ctx."""
    import torch

    full = bool(torch.randint(0, 2, (1,), generator=gen))
    length = n_ctx if full else int(torch.randint(8, n_ctx + 1, (1,), generator=gen))
    starts = torch.randint(0, len(ids) - length, (batch,), generator=gen)
    body = torch.stack([ids[s : s + length - 2] for s in starts.tolist()])
    cls = torch.full((batch, 1), tokenizer.cls_token_id)
    sep = torch.full((batch, 1), tokenizer.sep_token_id)
    return torch.cat([cls, body, sep], dim=1)


def mask_tokens(rows, tokenizer, rate: float, gen):
    """BERT masking: ``rate`` of the non-special tokens are predicted; of those 80% become
    [MASK], 10% a random token, 10% stay. Returns (inputs, labels with -100 elsewhere)."""
    import torch

    special = torch.tensor(sorted(tokenizer.all_special_ids))
    chosen = (torch.rand(rows.shape, generator=gen) < rate) & ~torch.isin(rows, special)
    labels = torch.where(chosen, rows, torch.full_like(rows, -100))
    roll = torch.rand(rows.shape, generator=gen)
    inputs = rows.clone()
    inputs[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    randomise = chosen & (roll >= 0.8) & (roll < 0.9)
    n_vocab = len(tokenizer)
    inputs[randomise] = torch.randint(
        len(SPECIALS), n_vocab, (int(randomise.sum()),), generator=gen
    )
    return inputs, labels


def evaluate(model, val_ids, tokenizer, n_ctx: int, windows: int = 64) -> dict:
    """Masked-token loss and accuracy on ``windows`` consecutive validation windows, masked
    with a fixed seed (the same tokens every evaluation)."""
    import torch

    gen = torch.Generator().manual_seed(1234)
    body = n_ctx - 2
    n = min(windows, len(val_ids) // body)
    rows = val_ids[: n * body].view(n, body)
    cls = torch.full((n, 1), tokenizer.cls_token_id)
    sep = torch.full((n, 1), tokenizer.sep_token_id)
    inputs, labels = mask_tokens(torch.cat([cls, rows, sep], 1), tokenizer, 0.15, gen)
    was = model.training
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=inputs).logits
    model.train(was)
    picked = labels != -100
    loss = torch.nn.functional.cross_entropy(logits[picked], labels[picked])
    accuracy = (logits[picked].argmax(-1) == labels[picked]).float().mean()
    return {"loss": float(loss), "accuracy": float(accuracy), "masked": int(picked.sum())}


def build_model(args, vocab: int, tokenizer):
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=vocab,
        hidden_size=args.d_model,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.d_mlp,
        max_position_embeddings=args.n_ctx,
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForMaskedLM(config)
    if args.sinusoidal_init:  # then trained; neighbours are easy to find from the start
        import torch

        with torch.no_grad():
            table = model.bert.embeddings.position_embeddings.weight
            table.copy_(0.1 * sinusoids(args.n_ctx, args.d_model))
    return model


def train(model, train_ids, val_ids, tokenizer, args) -> tuple[list[dict], int]:
    """The training loop, resumed from ``args.out/checkpoint.pt`` when there is one."""
    import torch
    from tqdm import tqdm

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    gen = torch.Generator().manual_seed(args.seed)
    history: list[dict] = []
    seen, first = 0, 0
    state = load_checkpoint(args.out)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        history, seen, first = state["history"], state["seen"], state["step"]
        print(f"train: resuming from step {first} ({args.out / 'checkpoint.pt'})")
    lr_at = lr_schedule(args.lr, args.steps)
    bar = tqdm(range(first, args.steps), desc="train", unit="step", initial=first, total=args.steps)
    model.train()
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        rows = window_batch(train_ids, args.n_ctx, args.batch_size, tokenizer, gen)
        inputs, labels = mask_tokens(rows, tokenizer, args.mask_rate, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = model(input_ids=inputs, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seen += rows.numel()
        loss = loss.detach()
        bar.set_postfix(loss=f"{float(loss):.3f}")
        done = step + 1
        if done % args.eval_every == 0 or done == args.steps:
            val = evaluate(model, val_ids, tokenizer, args.n_ctx)
            history.append({"step": done, "train_loss": float(loss), **val})
            bar.write(f"step {done}: val loss {val['loss']:.3f}, accuracy {val['accuracy']:.3f}")
        stop = args.stop_after is not None and done >= args.stop_after
        if (done % args.checkpoint_every == 0 or stop) and done < args.steps:
            save_checkpoint(
                args.out,
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "generator": gen.get_state(),
                    "history": history,
                    "seen": seen,
                    "step": done,
                },
            )
        if stop and done < args.steps:
            return history, seen
    return history, seen


def save_half(model, tokenizer, out: Path) -> None:
    """Save float16 weights with a float32 config (plain ``from_pretrained`` upcasts)."""
    model.half().save_pretrained(out)
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config["dtype"] = "float32"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    tokenizer.save_pretrained(out)
    (out / "checkpoint.pt").unlink(missing_ok=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    text = read_corpus(args.corpus)
    ewt = conllu_text(args.ewt)
    prepare_out(args.out, args.force, resumable=True)

    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    split = int(len(text) * 0.95)
    train_text, val_text = text[:split] + "\n" + ewt, text[split:]
    start = time.time()
    tokenizer = train_tokenizer(train_text, args.vocab_size)
    train_ids, val_ids = body_ids(tokenizer, train_text), body_ids(tokenizer, val_text)
    vocab = len(tokenizer)
    entropy, unigram_val = unigram_baseline(train_ids, val_ids, vocab)
    print(
        f"train: {len(train_ids):,} train / {len(val_ids):,} val tokens, vocab {vocab}; "
        f"unigram val cross-entropy {unigram_val:.3f} nats"
    )
    torch.manual_seed(args.seed)  # the same initial weights whether resumed or not
    model = build_model(args, vocab, tokenizer)
    history, seen = train(model, train_ids, val_ids, tokenizer, args)
    if not history or history[-1]["step"] != args.steps:
        print(f"train: stopped at step {args.stop_after}; run the same command to resume")
        return
    minutes = (time.time() - start) / 60
    model.eval()
    save_half(model, tokenizer, args.out)
    stats = run_stats(
        "train_demo_mlm.py", argv, minutes, model, train_ids, val_ids, args, seen,
        vocab=vocab, val_masked_loss=round(history[-1]["loss"], 4),
        val_masked_accuracy=round(history[-1]["accuracy"], 4),
        entropy=entropy, unigram_val=unigram_val, history=history,
    )  # fmt: skip
    loss = f"masked val loss {history[-1]['loss']:.3f} vs unigram {unigram_val:.3f}"
    save_run(args.out, stats, write_card, args, loss)


def write_card(out: Path, s: dict, args) -> None:
    rows = [
        (
            "architecture",
            f"BERT (BertForMaskedLM: {args.layers} layers, {args.heads} heads, d_model "
            f"{args.d_model}, d_mlp {args.d_mlp}, context {args.n_ctx}), {s['params']:,} "
            "parameters, weights stored in float16",
        ),
        (
            "tokenizer",
            f"lowercase WordPiece trained on the training text with `tokenizers`, "
            f"{s['vocab']} tokens, `[CLS] text [SEP]`",
        ),
        (
            "data",
            "Tiny Shakespeare (karpathy/char-rnn, public domain): first 95% of the characters "
            "train, last 5% validation; plus the sentences of UD English EWT dev "
            "(CC BY-SA 4.0) for modern English",
        ),
        (
            "training",
            f"{s['steps']} steps x {s['batch_size']} windows of up to {args.n_ctx} tokens "
            f"({s['tokens_seen']:,} tokens), {int(100 * args.mask_rate)}% masking (80/10/10), "
            f"AdamW, cosine schedule, seed {s['seed']}, bf16 autocast {s['bf16']}",
        ),
        ("command", f"`{s['command']}`"),
        ("time", f"{s['minutes']} min on a {s['machine']} CPU"),
        (
            "validation (training run)",
            f"masked-token loss {s['val_masked_loss']:.3f} nats, accuracy "
            f"{100 * s['val_masked_accuracy']:.1f}% (64 windows); unigram baseline "
            f"{s['unigram_val_cross_entropy']:.3f} nats",
        ),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    card = f"""# lmtt masked-LM demo model: a small BERT trained on Tiny Shakespeare

A **small demo masked LM** shipped with lmtt so that `lmtt mask`, the Masked LM tab, the
per-head diagrams and encoder routes work on a real model offline. It is not a general
language model: it has seen {s["train_tokens"]:,} training tokens, mostly Shakespeare.

| | |
|---|---|
{table}

Licence: the weights are MIT like lmtt; Tiny Shakespeare is in the public domain; UD English
EWT is CC BY-SA 4.0 (Silveira et al., 2014).

<!-- check_demo_mlm -->
"""
    (out / "README.md").write_text(card, encoding="utf-8")


if __name__ == "__main__":
    main()
