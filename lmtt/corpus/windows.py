"""Cut a streamed corpus into fixed-length token windows for batched forward passes.

Documents are tokenized in groups (the fast tokenizer's batch path), packed back to back with a
separator token between them, and cut into windows of ``window`` model inputs: the BOS token
(when the model has one) followed by ``window - 1`` stream tokens. Every corpus token gets a
global index (0, 1, 2, ... in corpus order; separators and BOS get -1), and one metadata row:
its document id, position in the document, token id and, for CoNLL-U documents, the UPOS tag
of the word it belongs to. The windowing depends only on the corpus, the tokenizer and the
window length, so every shard of a job sees the same windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import torch

from lmtt.corpus.readers import Document

TOKENIZE_GROUP = 256  # documents per tokenizer call


@dataclass(frozen=True)
class TokenRows:
    """Metadata of the corpus tokens of one window (one entry per corpus token)."""

    token_index: list[int]
    doc_id: list[str]
    position: list[int]
    token_id: list[int]
    upos: list[str | None]


@dataclass(frozen=True)
class Window:
    number: int  # 0, 1, 2, ... in corpus order
    ids: torch.Tensor  # [W] model input ids (BOS first when the model has one)
    token_index: torch.Tensor  # [W] global corpus token index, -1 for BOS and separators
    rows: TokenRows

    @property
    def n_corpus_tokens(self) -> int:
        return len(self.rows.token_index)


def word_index(doc: Document, offsets: list[tuple[int, int]]) -> list[int | None]:
    """The index of the word each token (given by its character span) falls in.

    Words are located in order in the document text; a token that overlaps no word (a space,
    a special token with an empty span) or a document whose words cannot be found in its text
    gets None.
    """
    if doc.words is None:
        return [None] * len(offsets)
    spans, at = [], 0
    for word in doc.words:
        start = doc.text.find(word, at)
        if start < 0:
            return [None] * len(offsets)
        spans.append((start, start + len(word)))
        at = start + len(word)
    found: list[int | None] = []
    w = 0
    for start, end in offsets:
        while w < len(spans) and spans[w][1] <= start:
            w += 1
        overlaps = end > start and w < len(spans) and spans[w][0] < end
        found.append(w if overlaps else None)
    return found


def word_tags(doc: Document, offsets: list[tuple[int, int]]) -> list[str | None]:
    """The UPOS tag of the word each token falls in (see :func:`word_index`)."""
    if doc.upos is None:
        return [None] * len(offsets)
    return [None if w is None else doc.upos[w] for w in word_index(doc, offsets)]


def _tokenized(docs: Iterable[Document], tokenizer) -> Iterator[tuple[Document, list, list]]:
    """(document, token ids, UPOS per token), tokenizing groups of documents at once."""
    docs = iter(docs)
    while group := list(islice(docs, TOKENIZE_GROUP)):
        enc = tokenizer(
            [d.text for d in group], add_special_tokens=False, return_offsets_mapping=True
        )
        for doc, ids, offsets in zip(group, enc["input_ids"], enc["offset_mapping"], strict=True):
            if ids:
                yield doc, ids, word_tags(doc, offsets)


def separator_id(tokenizer) -> int | None:
    for tid in (tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.sep_token_id):
        if tid is not None:
            return int(tid)
    return None


def windows(
    docs: Iterable[Document], tokenizer, window: int, max_tokens: int | None = None
) -> Iterator[Window]:
    """Fixed-length windows over the packed corpus; the last one may be shorter."""
    bos = tokenizer.bos_token_id
    prefix = [] if bos is None else [int(bos)]
    room = window - len(prefix)
    if room < 1:
        raise ValueError(f"window must be at least {len(prefix) + 1} tokens, not {window}")
    sep = separator_id(tokenizer)
    ids: list[int] = []
    index: list[int] = []
    meta = TokenRows([], [], [], [], [])
    number = next_token = 0

    def flush() -> Window:
        nonlocal ids, index, meta, number
        win = Window(
            number,
            torch.tensor(prefix + ids, dtype=torch.long),
            torch.tensor([-1] * len(prefix) + index, dtype=torch.long),
            meta,
        )
        ids, index, meta = [], [], TokenRows([], [], [], [], [])
        number += 1
        return win

    for doc, doc_ids, tags in _tokenized(docs, tokenizer):
        if ids and sep is not None:  # separator between documents, not indexed
            ids.append(sep)
            index.append(-1)
            if len(ids) == room:
                yield flush()
        if max_tokens is not None:
            doc_ids = doc_ids[: max_tokens - next_token]
        start = 0
        while start < len(doc_ids):  # fill the window with as much of the document as fits
            stop = min(start + room - len(ids), len(doc_ids))
            take = range(next_token, next_token + stop - start)
            ids.extend(doc_ids[start:stop])
            index.extend(take)
            meta.token_index.extend(take)
            meta.doc_id.extend([doc.doc_id] * (stop - start))
            meta.position.extend(range(start, stop))
            meta.token_id.extend(doc_ids[start:stop])
            meta.upos.extend(tags[start:stop])
            next_token += stop - start
            start = stop
            if len(ids) == room:
                yield flush()
        if max_tokens is not None and next_token >= max_tokens:
            break
    if any(i >= 0 for i in index):
        yield flush()
