"""Token display helpers that need no model."""

from __future__ import annotations

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
