"""The string shown for every token id: the tokenizer's own piece, spaces kept.

Decoding each id alone loses information: a SentencePiece-style decoder (Llama 2, Mistral, any
``▁`` vocabulary) strips the leading space of a text, so ``▁of`` would show as ``of``, and a
byte-level piece of a multi-byte character decodes to U+FFFD. :func:`vocab_strings` therefore
shows each token as its piece: ``▁`` becomes a space, byte-fallback pieces (``<0x0A>``) their
byte, and bytes that are not valid UTF-8 on their own ``\\xNN``.
"""

from __future__ import annotations

import re

METASPACE = "\u2581"  # ▁
_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_BYTE_DECODER: dict[str, int] = {}


def byte_level_text(piece: str | None, fallback: str) -> str:
    """Decode a byte-level BPE piece, showing bytes that are not valid UTF-8 as \\xNN."""
    if not _BYTE_DECODER:
        bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
        cs, extra = bs[:], 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + extra)
                extra += 1
        _BYTE_DECODER.update({chr(c): b for b, c in zip(bs, cs, strict=True)})
    if piece is None or any(ch not in _BYTE_DECODER for ch in piece):
        return fallback
    return bytes(_BYTE_DECODER[ch] for ch in piece).decode("utf-8", errors="backslashreplace")


def metaspace_text(piece: str) -> str:
    """A SentencePiece piece as text: ``▁`` is a space, ``<0xNN>`` is that byte."""
    match = _BYTE_PIECE.match(piece)
    if match:
        return bytes([int(match[1], 16)]).decode("utf-8", errors="backslashreplace")
    return piece.replace(METASPACE, " ")


def vocab_strings(tokenizer, n_tokens: int) -> list[str]:
    """The display string of token ids 0..n_tokens-1 (see the module docstring)."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(n_tokens)))
    special = set(tokenizer.all_special_ids)
    if any(p is not None and METASPACE in p for p in pieces):
        return [p if i in special else metaspace_text(p or "") for i, p in enumerate(pieces)]
    strs = tokenizer.batch_decode([[i] for i in range(n_tokens)])
    for i, s in enumerate(strs):
        if "\ufffd" in s:  # byte-level pieces of a multi-byte character: show their bytes
            strs[i] = byte_level_text(pieces[i], s)
    return strs
