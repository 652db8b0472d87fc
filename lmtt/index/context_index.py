"""Corpus context search (exBERT): which corpus tokens have a hidden state like this one?

``build_context_index`` streams a corpus one document at a time, runs the model, and appends
every (non-special) token's residual state at each chosen layer, L2-normalised and float16, to
``layer-L.f16`` (a flat [n, d_model] array); token metadata (document, sentence, position,
character span, token, UPOS and dependency relation for CoNLL-U) goes to ``tokens.parquet``.
``search`` is an exact inner-product (cosine) search over the memory-mapped array in chunks, so
neither the corpus nor the index has to fit in memory. A document longer than the model's
context is split into pieces (each with the model's special tokens), so no token is dropped.
Only the residual stream is captured (no attention hooks). Layer l is the residual stream before
block l (0 = embeddings, n_layers = the final state).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmtt.corpus.readers import ReadReport, read_corpus
from lmtt.corpus.windows import word_index
from lmtt.errors import ContextIndexError, check_index
from lmtt.index.jobs import corpus_files_fingerprint, fresh_output
from lmtt.index.manifest import read_manifest, write_manifest
from lmtt.io import check_output, disk_errors
from lmtt.models.trace import run_trace

SCHEMA_VERSION = 1
META = "lmtt-contexts.json"


def hidden_states(model, tokens) -> torch.Tensor:
    """The residual stream of one forward pass [L + 1, T, d_model] (before each layer, then
    the last one's output): no attention or MLP hooks, what context search needs."""
    return run_trace(model, tokens, capture={"resid_pre"}).residual_stream()


def _prefix(model) -> list[int]:
    """Token ids the model puts before a text that its tokenizer call does not (decoders: BOS)."""
    plain = model.tokenizer("a")["input_ids"]
    full = model.encode("a").tolist()
    return full[: len(full) - len(plain)] if full[len(full) - len(plain) :] == plain else []


def _segments(model, doc, prefix: list[int]):
    """Split one document into pieces the model can take.

    Returns (pieces, words, spans): each piece is (token ids [t], positions [t] in the whole
    document, is_special [t]) with t <= n_ctx; a document longer than the model's context is
    split, every piece keeping the leading and trailing special tokens. ``words`` maps each
    document position to its word (None for special tokens and text outside words), ``spans``
    to its character span in the document text."""
    enc = model.tokenizer(
        doc.text, return_offsets_mapping=True, return_special_tokens_mask=True, verbose=False
    )
    ids = torch.tensor(prefix + enc["input_ids"])
    special = torch.tensor([1] * len(prefix) + enc["special_tokens_mask"], dtype=torch.bool)
    spans = [(0, 0)] * len(prefix) + [tuple(o) for o in enc["offset_mapping"]]
    words = [None] * len(prefix) + word_index(doc, enc["offset_mapping"])
    T, n_ctx = len(ids), model.dims.n_ctx
    lead = int(special.int().cumprod(0).sum()) if T else 0
    trail = int(special.flip(0).int().cumprod(0).sum()) if lead < T else 0
    size = n_ctx - lead - trail
    if size <= 0:
        raise ContextIndexError(f"{model.name}'s context ({n_ctx}) has no room for text.")
    pieces = []
    for start in range(lead, max(T - trail, lead + 1), size):
        body = torch.arange(start, min(start + size, T - trail))
        pos = torch.cat([torch.arange(lead), body, torch.arange(T - trail, T)])
        pieces.append((ids[pos], pos, special[pos]))
    return pieces, words, spans


ROW_FIELDS = ("doc_id", "sentence", "position", "start", "end", "token", "upos", "deprel")


class _Writer:
    """Appends states (one flat float16 file per layer) and token rows as documents stream."""

    def __init__(self, model, folder: Path, layers: list[int]):
        self.model, self.layers, self.n = model, layers, 0
        self.files = {x: open(folder / f"layer-{x}.f16", "wb") for x in layers}  # noqa: SIM115
        self.rows: dict[str, list] = {k: [] for k in ROW_FIELDS}

    def add(self, doc, ids, positions, keep, words, spans) -> None:
        """The tokens ``keep`` (indices into the piece ``ids``) of one document piece."""
        hidden = hidden_states(self.model, ids)  # [L + 1, t, d_model]
        for x in self.layers:
            states = torch.nn.functional.normalize(hidden[x][keep], dim=-1)
            self.files[x].write(states.to(torch.float16).numpy().tobytes())
        strs = self.model.token_strings(ids[keep])
        for j, pos in enumerate(positions[keep].tolist()):
            w = words[pos]
            values = (doc.doc_id, doc.text, pos, spans[pos][0], spans[pos][1], strs[j])
            values += (None if w is None or doc.upos is None else doc.upos[w],)
            values += (None if w is None or doc.deprel is None else doc.deprel[w],)
            for name, value in zip(ROW_FIELDS, values, strict=True):
                self.rows[name].append(value)
        self.n += len(keep)

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def _check_layers(model, layers: list[int] | None) -> list[int]:
    L = model.dims.n_layers
    layers = list(range(L + 1)) if layers is None else sorted(set(layers))
    if not layers or not all(0 <= x <= L for x in layers):
        raise ContextIndexError(f"Layers must be in 0..{L} (0 = embeddings), not {layers}.")
    return layers


def build_context_index(
    model,
    corpus: str | Path,
    out: str | Path,
    layers: list[int] | None = None,
    max_tokens: int | None = None,
    progress: bool = True,
) -> dict:
    """Index the corpus; returns the metadata written to ``lmtt-contexts.json``. Everything is
    checked before the folder is touched, and a failed build leaves nothing behind."""
    layers = _check_layers(model, layers)
    if max_tokens is not None and max_tokens < 1:
        raise ContextIndexError(f"--max-tokens must be at least 1, not {max_tokens}.")
    folder = check_output(out, folder=True)
    files = corpus_files_fingerprint(corpus)
    with fresh_output(folder, META, ContextIndexError) as staging, disk_errors(folder):
        n, report = _index_corpus(model, corpus, staging, layers, max_tokens, progress)
        meta = {
            "schema_version": SCHEMA_VERSION,
            "model": model.name,
            "corpus": str(corpus),
            "corpus_files": files,
            "layers": layers,
            "d_model": model.dims.d_model,
            "n_tokens": n,
            "documents": report.documents,
            "skipped_invalid_utf8": report.skipped_invalid_utf8,
            "bytes": sum(f.stat().st_size for f in staging.iterdir()),
        }
        write_manifest(staging / META, meta)
    return meta


def _index_corpus(model, corpus, staging: Path, layers, max_tokens, progress):
    """Stream the corpus into ``staging``; returns (tokens indexed, the read report)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    writer, report = _Writer(model, staging, layers), ReadReport()
    bar = tqdm(desc="context index", unit="tok", unit_scale=True, disable=not progress)
    try:
        prefix = _prefix(model)
        for doc in read_corpus(corpus, report):
            pieces, words, spans = _segments(model, doc, prefix)
            for ids, positions, special in pieces:
                keep = (~special).nonzero().flatten()  # [k] indices into this piece
                if max_tokens is not None:
                    keep = keep[: max_tokens - writer.n]
                if len(keep):
                    writer.add(doc, ids, positions, keep, words, spans)
                    bar.update(len(keep))
            if max_tokens is not None and writer.n >= max_tokens:
                break
    finally:
        writer.close()
        bar.close()
    if writer.n == 0:
        raise ContextIndexError(f"Corpus {corpus} has no text to index.")
    pq.write_table(pa.table(writer.rows), staging / "tokens.parquet")
    return writer.n, report


@dataclass(frozen=True)
class ContextMatch:
    rank: int
    similarity: float
    doc_id: str
    sentence: str
    position: int
    token: str
    upos: str | None
    deprel: str | None
    start: int = 0  # the token's character span in ``sentence`` (0, 0 in indexes built
    end: int = 0  # before spans were stored: the sentence is then shown unmarked)

    def in_context(self, width: int = 80) -> str:
        """The sentence around the token, the token marked »like this« (``width`` characters
        of context on each side at most)."""
        text, a, b = self.sentence, self.start, self.end
        if not 0 <= a < b <= len(text):
            return text[: 2 * width]
        left = ("…" if a > width else "") + text[max(0, a - width) : a]
        right = text[b : b + width] + ("…" if len(text) - b > width else "")
        return f"{left}»{text[a:b]}«{right}".replace("\n", " ")


class ContextIndex:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.meta = read_manifest(
            self.folder / META, SCHEMA_VERSION, ContextIndexError, "a finished context index",
            "lmtt index-contexts",
        )  # fmt: skip
        self._tokens = None

    def check_layer(self, layer: int) -> None:
        if layer not in self.meta["layers"]:
            raise ContextIndexError(
                f"Layer {layer} is not in this index (layers {self.meta['layers']})."
            )

    def vectors(self, layer: int) -> np.memmap:
        self.check_layer(layer)
        shape = (self.meta["n_tokens"], self.meta["d_model"])
        path = self.folder / f"layer-{layer}.f16"
        size = path.stat().st_size if path.is_file() else -1
        if size != shape[0] * shape[1] * 2:
            raise ContextIndexError(
                f"{path} is damaged ({size} bytes, expected {shape[0] * shape[1] * 2}). Rebuild "
                "the index with `lmtt index-contexts`."
            )
        return np.memmap(path, np.float16, "r", shape=shape)

    def search(
        self, query: torch.Tensor, layer: int, k: int = 50, chunk: int = 65536
    ) -> list[tuple[int, float]]:
        """(row, cosine) of the k rows most similar to query [d], exact, in chunks."""
        vecs = self.vectors(layer)
        q = torch.nn.functional.normalize(query.float(), dim=0)
        best_v, best_i = torch.empty(0), torch.empty(0, dtype=torch.long)
        for start in range(0, len(vecs), chunk):
            block = torch.from_numpy(np.asarray(vecs[start : start + chunk], np.float32))
            sims = block @ q
            top = sims.topk(min(k, len(sims)))
            best_v = torch.cat([best_v, top.values])
            best_i = torch.cat([best_i, top.indices + start])
            keep = best_v.topk(min(k, len(best_v)))
            best_v, best_i = keep.values, best_i[keep.indices]
        return list(zip(best_i.tolist(), best_v.tolist(), strict=True))

    def rows(self, ids: list[int]) -> list[dict]:
        import pyarrow.parquet as pq

        if self._tokens is None:
            try:
                self._tokens = pq.read_table(self.folder / "tokens.parquet")
            except (OSError, ValueError) as e:  # pyarrow's errors for a damaged file
                raise ContextIndexError(
                    f"{self.folder / 'tokens.parquet'} is damaged ({str(e)[:120]}). Rebuild the "
                    "index with `lmtt index-contexts`."
                ) from None
        return self._tokens.take(ids).to_pylist()


def search_token(model, index: ContextIndex, text: str, position: int, layer: int, k: int = 50):
    """The k corpus tokens whose state at ``layer`` is closest to the prompt token's."""
    if k < 1:
        raise ContextIndexError(f"Ask for at least one match (k = {k}).")
    if index.meta["model"] != model.name:
        raise ContextIndexError(
            f"The index was built with {index.meta['model']}, not {model.name}."
        )
    index.check_layer(layer)
    hidden = hidden_states(model, text)  # [L + 1, T, d_model]
    check_index("Token position", position, hidden.shape[1])
    hits = index.search(hidden[layer][position], layer, k)
    rows = index.rows([i for i, _ in hits])
    return [
        ContextMatch(rank, sim, r["doc_id"], r["sentence"], r["position"], r["token"],
                     r["upos"], r["deprel"], r.get("start", 0), r.get("end", 0))
        for rank, ((_, sim), r) in enumerate(zip(hits, rows, strict=True))
    ]  # fmt: skip


def histograms(matches: list[ContextMatch]) -> tuple[dict[str, int], dict[str, int]]:
    """UPOS and dependency-relation counts of the matches (CoNLL-U corpora)."""
    upos = Counter(m.upos for m in matches if m.upos)
    deprel = Counter(m.deprel for m in matches if m.deprel)
    return dict(upos.most_common()), dict(deprel.most_common())
