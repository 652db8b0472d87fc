"""Token strings: each token is shown as the tokenizer's own piece, spaces kept."""

from __future__ import annotations

import pytest

from lmtt.models import load_model
from lmtt.models.tokens import metaspace_text, vocab_strings
from lmtt.testing import make_tiny_model

TEXT = "The list of cats sat on the mat. A cat of the house.\nOne café."


def sentencepiece_tokenizer():
    """A Llama-2-style tokenizer.json: ▁ for spaces, whole-word pieces, byte fallback, and a
    decoder that strips the leading space of a text (so decoding one id alone loses its word
    boundary, as with Llama 2 and Mistral)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(256))]
    words = sorted({f"▁{w}" for w in TEXT.split()})
    chars = sorted({c for w in words for c in w} - {"é"})  # é only through byte fallback
    merges, pieces = [], []
    for word in words:  # merge each word left to right: ▁ + o -> ▁o, ▁o + f -> ▁of
        for end in range(2, len(word) + 1):
            merge = (word[: end - 1], word[end - 1])
            if merge[1] in chars and merge not in merges and all(c in chars for c in word):
                merges.append(merge)
                pieces.append(word[:end])
    vocab = {t: i for i, t in enumerate(dict.fromkeys([*specials, *chars, *pieces]))}
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence(
        [decoders.Metaspace(replacement="▁", prepend_scheme="first"), decoders.ByteFallback(),
         decoders.Fuse()]
    )  # fmt: skip
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def test_metaspace_pieces_keep_their_space():
    assert metaspace_text("▁of") == " of"
    assert metaspace_text("<0x0A>") == "\n"
    assert metaspace_text("<0xC3>") == "\\xc3"  # half of a two-byte character
    assert metaspace_text("list") == "list"


def test_sentencepiece_vocab_shows_word_boundaries(tmp_path):
    tok = sentencepiece_tokenizer()
    ids = tok(" of", add_special_tokens=False)["input_ids"]
    piece = tok.convert_ids_to_tokens(ids)[-1]
    assert piece == "▁of" and tok.decode(ids[-1:]) == "of"  # the bug: decoding alone strips it
    strs = vocab_strings(tok, len(tok))
    assert strs[ids[-1]] == " of"
    assert strs[tok.convert_tokens_to_ids("<0x0A>")] == "\n"
    assert strs[tok.bos_token_id] == "<s>"  # special tokens as they are


def test_a_sentencepiece_model_shows_spaces_in_its_tokens(tmp_path):
    folder = tmp_path / "tok"
    sentencepiece_tokenizer().save_pretrained(folder)
    model_folder = make_tiny_model(tmp_path / "m", "llama", n_layers=1, tokenizer_folder=folder)
    model = load_model(str(model_folder), device="cpu")
    shown = model.token_strings(model.encode(TEXT))
    assert " of" in shown and " cat" in shown
    assert "".join(shown).replace("<s>", "").strip() == TEXT.replace("é", "\\xc3\\xa9")


@pytest.mark.parametrize("fixture", ["gpt2_model", "llama_model"])
def test_byte_level_vocab_is_unchanged(fixture, request):
    model = request.getfixturevalue(fixture)
    ids = model.encode("The cat sat").tolist()[1:]
    assert model.token_strings(ids) == [model.tokenizer.decode([i]) for i in ids]
