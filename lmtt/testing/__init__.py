"""Tiny random models as real Hugging Face folders, for tests and benchmarks.

They go through exactly the loading path users take (``load_model(folder)``): a ``config.json``,
``model.safetensors`` and a byte-level BPE ``tokenizer.json`` trained on a short built-in text.
Run ``python -m lmtt.testing gpt2|llama DIR`` to write one by hand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lmtt.testing.configs import CONFIGS

_TEXT = (
    "The capital of France is Paris. The cat sat on the mat and looked at the dog. "
    "When Mary and John went to the store, John gave a drink to Mary. "
    "First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. "
    "One, two, three, four, five, six, seven, eight, nine, ten. 0123456789 !?.,;:'\"()[]{} "
)


def _tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_TEXT] * 4, trainer)
    eot = "<|endoftext|>"
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=eot, eos_token=eot, unk_token=eot
    )


def tiny_config(arch: str, vocab: int, init_std: float, **dims):
    """A transformers config of ``arch`` (its own config class) with the generic ``dims``
    (d_model, n_layers, n_heads, n_kv_heads, d_mlp, n_ctx) under that config's names."""
    from transformers import AutoConfig

    if arch not in CONFIGS:
        raise ValueError(f"arch must be one of {', '.join(CONFIGS)}, not {arch!r}")
    names, extra = CONFIGS[arch]
    fields = {names[k]: v for k, v in dims.items() if k in names and v is not None}
    return AutoConfig.for_model(
        arch, vocab_size=vocab, bos_token_id=0, eos_token_id=0, pad_token_id=0,
        initializer_range=init_std, **fields, **extra(dims),
    )  # fmt: skip


def _perturb_norms_and_biases(model) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name.lower() or ".ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)


def make_tiny_model(
    folder: str | Path,
    arch: str = "gpt2",
    n_layers: int = 2,
    d_model: int = 32,
    n_heads: int = 4,
    n_kv_heads: int | None = None,
    d_mlp: int | None = None,
    n_ctx: int = 64,
    vocab_size: int = 320,
    seed: int = 0,
    init_std: float = 0.3,
    tokenizer_folder: str | Path | None = None,
) -> Path:
    """Write a random ``arch`` (a key of :data:`CONFIGS`) causal LM folder; return its path.

    ``init_std`` is larger than the usual 0.02 so attention patterns are far from uniform
    and the decompositions are tested on non-trivial numbers. ``tokenizer_folder`` uses an
    existing tokenizer (e.g. the real GPT-2 one) instead of a small trained BPE.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    if tokenizer_folder is not None:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_folder))
    else:
        tokenizer = _tokenizer(vocab_size)
    torch.manual_seed(seed)
    config = tiny_config(
        arch, len(tokenizer), init_std, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
        n_kv_heads=n_kv_heads or max(1, n_heads // 2), d_mlp=d_mlp or 4 * d_model, n_ctx=n_ctx,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_config(config)
    _perturb_norms_and_biases(model)  # so every term of the decomposition is exercised
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("arch", choices=sorted(CONFIGS))
    parser.add_argument("folder")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--heads", type=int, default=4)
    args = parser.parse_args()
    path = make_tiny_model(args.folder, args.arch, args.layers, args.d_model, args.heads)
    print(f"wrote a tiny random {args.arch} model to {path}")


if __name__ == "__main__":
    main()


BERT_WORDS = [
    "the",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "a",
    "an",
    "is",
    "was",
    "ran",
    "to",
    "of",
    "and",
    "in",
    "it",
    "he",
    "she",
    "they",
    "big",
    "small",
    "red",
    "blue",
    "house",
    "tree",
    "car",
    "book",
    ".",
    ",",
    "!",
    "?",
]


def make_tiny_bert(
    folder: str | Path, n_layers: int = 2, seed: int = 0, init_std: float = 0.02
) -> Path:
    """A tiny random ``BertForMaskedLM`` folder with a small WordPiece vocabulary (for the
    masked-LM and encoder tests). A larger ``init_std`` gives writes far from negligible, and
    random norm gains and biases (for the decomposition's tests)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *BERT_WORDS, "##s", "##ed"]
    ids = {w: i for i, w in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.decoder = decoders.WordPiece()
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    ).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=init_std,
    )
    model = BertForMaskedLM(config).eval()
    if init_std != 0.02:  # random norm gains and biases too, so every term is exercised
        _perturb_norms_and_biases(model)
    model.save_pretrained(folder)
    return folder
