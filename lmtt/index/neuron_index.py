"""Build a neuron index: top-activating corpus tokens and statistics for every MLP neuron.

The corpus is cut into windows (``lmtt.windows``) and the windows into *chunks* of
``chunk_windows`` windows. Chunk ``c`` belongs to shard ``c % n_shards``; a shard runs its chunks
in order, folding each into a running :class:`NeuronTopK` / :class:`NeuronStats` that is
checkpointed after every chunk (``state/shard-i-of-n.pt``). Interrupting and re-running continues
after the last finished chunk; shards merge exactly (top-k merge and fixed-point sums are
associative), so ``--shard i/n`` on any engine followed by ``merge_index`` equals one run.

A job holds its folder's lock (a second job on the same folder refuses), records the corpus's
files and sizes in the manifest and a hash of what it read in every checkpoint: a resume after
the corpus changed refuses instead of mixing two texts. Every file is written atomically, so
an interrupted job, a full disk or a read-only folder leaves a folder the same command resumes.

Storage (schema version 1, written by ``lmtt.index.neuron_store.finalize``; read by
``lmtt.index.neuron_store``): ``lmtt-index.json`` manifest, ``tokens/chunk-NNNNNN.parquet``
(every corpus token), ``neurons.parquet`` (per-neuron statistics) and ``examples.parquet``
(top-k per neuron).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import torch

from lmtt.corpus.readers import ReadReport, read_corpus
from lmtt.corpus.windows import Window, windows
from lmtt.errors import NeuronIndexError, NonFiniteActivationError
from lmtt.index.jobs import (
    LOCK,
    CorpusChangedError,
    FolderLock,
    HashingReader,
    check_same_files,
    corpus_files_fingerprint,
)
from lmtt.index.manifest import write_manifest
from lmtt.index.neuron_store import MANIFEST, SCHEMA_VERSION, finalize, read_neuron_manifest
from lmtt.index.neuron_topk import NeuronStats, NeuronTopK
from lmtt.io import atomic_path, check_output, disk_errors
from lmtt.models.capture import capture


@dataclass(frozen=True)
class IndexSettings:
    """Everything that determines an index's contents; shards and resumes must agree on it."""

    model: str
    corpus: str
    n_layers: int
    d_mlp: int
    top_k: int = 20
    window: int = 128
    batch_size: int = 8
    chunk_windows: int = 64
    context: int = 64  # tokens shown either side of an example by default
    max_tokens: int | None = None

    def check(self) -> None:
        """Refuse values outside their natural bounds, and a top-k that cannot fit in memory."""
        for name in ("top_k", "batch_size", "chunk_windows"):
            if getattr(self, name) < 1:
                raise NeuronIndexError(f"--{name.replace('_', '-')} must be at least 1.")
        if self.window < 2:
            raise NeuronIndexError("--window must be at least 2 (a BOS token and one more).")
        if self.context < 0:
            raise NeuronIndexError("--context must be 0 or more.")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise NeuronIndexError("--max-tokens must be at least 1.")
        try:
            NeuronTopK.check_fits(self.n_layers, self.d_mlp, self.top_k)
        except ValueError as e:
            raise NeuronIndexError(str(e)) from None


@dataclass
class ShardState:
    shard: int
    n_shards: int
    next_chunk: int  # every chunk of this shard below this number is done
    complete: bool
    tokens: int  # corpus tokens this shard indexed
    topk: NeuronTopK
    stats: NeuronStats
    corpus_documents: int = 0  # filled when complete (whole corpus, as read)
    corpus_tokens: int = 0
    chunks_total: int = 0
    skipped_invalid_utf8: int = 0
    corpus_hash: str = ""  # of everything read when chunk next_chunk - 1 was cut (or all)


def state_path(folder: Path, shard: int, n_shards: int) -> Path:
    return folder / "state" / f"shard-{shard:04d}-of-{n_shards:04d}.pt"


def check_folder(folder: Path) -> None:
    """Refuse a non-empty folder that is not an lmtt index, before anything is written."""
    if (folder / MANIFEST).exists() or not folder.exists():
        return
    if any(p.name != LOCK for p in folder.iterdir()):
        raise NeuronIndexError(
            f"{folder} is not empty and is not an lmtt index (no {MANIFEST}). Refusing to write "
            "into it: pass a new or empty --out folder."
        )


def prepare_folder(folder: Path, settings: IndexSettings, corpus_files: list) -> None:
    """Start the folder's manifest, or check it is this job's own: same settings and the same
    corpus files and sizes. Call it holding the folder's lock."""
    if not (folder / MANIFEST).exists():
        manifest = {"schema_version": SCHEMA_VERSION, "settings": asdict(settings)}
        write_manifest(folder / MANIFEST, manifest | {"corpus_files": corpus_files})
        return
    manifest = read_neuron_manifest(folder)
    theirs, ours = manifest["settings"], asdict(settings)
    diff = {k: (theirs.get(k), v) for k, v in ours.items() if theirs.get(k) != v}
    if diff:
        lines = ", ".join(f"{k}: folder has {a!r}, asked {b!r}" for k, (a, b) in diff.items())
        raise NeuronIndexError(
            f"{folder} holds an index built with other settings ({lines}). Use the same "
            "settings to resume it, or a new --out folder."
        )
    check_same_files(settings.corpus, manifest.get("corpus_files"), folder)


def save_state(path: Path, state: ShardState) -> None:
    """Atomic checkpoint: a crash leaves the previous state intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(state) | {"topk": asdict(state.topk), "stats": asdict(state.stats)}
    with atomic_path(path) as tmp:
        torch.save(data, tmp)


def load_state(path: Path) -> ShardState:
    data = torch.load(path, weights_only=True)
    data["topk"] = NeuronTopK(**data["topk"])
    data["stats"] = NeuronStats(**data["stats"])
    return ShardState(**data)


def _chunks(wins: Iterator[Window], size: int) -> Iterator[list[Window]]:
    while chunk := list(islice(wins, size)):
        yield chunk


def _batches(chunk: list[Window], batch_size: int) -> Iterator[list[Window]]:
    """Consecutive windows of equal length, at most batch_size at a time (deterministic)."""
    batch: list[Window] = []
    for win in chunk:
        if batch and (len(batch) == batch_size or len(win.ids) != len(batch[0].ids)):
            yield batch
            batch = []
        batch.append(win)
    if batch:
        yield batch


def index_chunk(model, chunk: list[Window], batch_size: int, topk, stats) -> None:
    """Run the chunk's windows in batches, capturing only the MLP hidden activations."""
    wanted = [("mlp_post", layer) for layer in range(model.dims.n_layers)]
    for batch in _batches(chunk, batch_size):
        ids = torch.stack([w.ids for w in batch])  # [B, W]
        index = torch.stack([w.token_index for w in batch]).flatten()  # [B*W]
        _, acts = capture(model, ids, wanted, keep_logits=False)
        keep = index >= 0
        per_layer = torch.stack([acts[key].flatten(0, 1) for key in wanted])  # [L, B*W, N]
        try:
            stats.update(per_layer, keep)
        except ValueError:
            bad = int((~torch.isfinite(per_layer[:, keep])).flatten(1).any(dim=1).nonzero()[0])
            raise NonFiniteActivationError(
                f"Non-finite MLP activations in layer {bad} (windows "
                f"{batch[0].number}-{batch[-1].number}). Try --dtype float32.",
                layer=bad,
            ) from None
        per_layer[:, ~keep] = float("-inf")  # BOS and separators: never selected
        topk.update(per_layer, index)


def write_tokens(model, folder: Path, chunk_no: int, chunk: list[Window]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [w.rows for w in chunk]
    ids = [t for r in rows for t in r.token_id]
    table = pa.table(
        {
            "token_index": pa.array([t for r in rows for t in r.token_index], pa.int64()),
            "doc_id": pa.array([t for r in rows for t in r.doc_id], pa.string()),
            "position": pa.array([t for r in rows for t in r.position], pa.int32()),
            "token_id": pa.array(ids, pa.int32()),
            "token": pa.array(model.token_strings(ids), pa.string()),
            "upos": pa.array([t for r in rows for t in r.upos], pa.string()),
        }
    )
    path = folder / "tokens" / f"chunk-{chunk_no:06d}.parquet"
    path.parent.mkdir(exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def index_neurons(
    model,
    corpus: str | Path,
    out: str | Path,
    settings: IndexSettings,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> ShardState:
    """Index one shard (all of the corpus when shard is (0, 1)); finalize when it is the only one.

    Resumes from the shard's checkpoint when ``out`` holds this job's own partial index.
    Everything that can be checked is checked before the folder is touched.
    """
    settings.check()
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise NeuronIndexError(f"--shard {i}/{n}: expected i/n with 0 <= i < n.")
    folder = check_output(out, folder=True)
    check_folder(folder)
    files = corpus_files_fingerprint(corpus)
    report = ReadReport()
    reader = HashingReader(read_corpus(corpus, report))
    wins = windows(reader, model.tokenizer, settings.window, settings.max_tokens)
    first = next(wins, None)
    if first is None:
        raise NeuronIndexError(
            f"Corpus {corpus} has no text to index ({report.documents} documents, "
            f"{report.skipped_invalid_utf8} lines skipped as invalid UTF-8)."
        )
    folder.mkdir(parents=True, exist_ok=True)
    with FolderLock(folder), disk_errors(folder, resumable=True):
        prepare_folder(folder, settings, files)
        path = state_path(folder, i, n)
        state = load_state(path) if path.exists() else new_state(model, settings, shard)
        if not state.complete:
            _index_rest(model, _prepend(first, wins), reader, report, folder, settings, state,
                        progress)  # fmt: skip
    return state


def _index_rest(model, wins, reader, report, folder, settings, state, progress) -> None:
    """Run the chunks not done yet, then mark the shard complete (and finalize a lone shard)."""
    from tqdm.auto import tqdm

    i, n = state.shard, state.n_shards
    path = state_path(folder, i, n)
    label = "indexing" if n == 1 else f"indexing shard {i}/{n}"
    with tqdm(desc=label, unit="tok", unit_scale=True, disable=not progress, smoothing=0.1) as bar:
        chunks, corpus_tokens = _run_chunks(model, wins, reader, folder, path, settings, state,
                                            bar)  # fmt: skip
    state.complete, state.chunks_total = True, chunks
    state.corpus_documents, state.corpus_tokens = report.documents, corpus_tokens
    state.skipped_invalid_utf8, state.corpus_hash = report.skipped_invalid_utf8, reader.digest()
    save_state(path, state)
    if n == 1:
        finalize(folder, [state])


def new_state(model, settings: IndexSettings, shard: tuple[int, int]) -> ShardState:
    """The empty state of a shard that has not started."""
    d = model.dims
    return ShardState(
        shard[0],
        shard[1],
        next_chunk=0,
        complete=False,
        tokens=0,
        topk=NeuronTopK.empty(d.n_layers, d.d_mlp, settings.top_k),
        stats=NeuronStats.empty(d.n_layers, d.d_mlp),
    )


def _run_chunks(model, wins, reader, folder, path, settings, state, bar) -> tuple[int, int]:
    """Index this shard's chunks that are not done yet, checkpointing after each; returns
    (number of chunks, corpus tokens) of the whole corpus. On a resume, the text read up to
    the last checkpoint must hash as it did then."""
    corpus_tokens = chunk_no = 0
    for chunk_no, chunk in enumerate(_chunks(wins, settings.chunk_windows)):
        n_tokens = sum(w.n_corpus_tokens for w in chunk)
        corpus_tokens += n_tokens
        if chunk_no == state.next_chunk - 1 and state.corpus_hash != reader.digest():
            raise CorpusChangedError(
                f"The corpus changed since the job in {folder} started: its first "
                f"{chunk_no + 1} chunks read differently now. Restore the corpus, or start "
                "again in a new --out."
            )
        if chunk_no % state.n_shards != state.shard or chunk_no < state.next_chunk:
            continue
        index_chunk(model, chunk, settings.batch_size, state.topk, state.stats)
        write_tokens(model, folder, chunk_no, chunk)
        state.next_chunk, state.tokens = chunk_no + 1, state.tokens + n_tokens
        state.corpus_hash = reader.digest()
        save_state(path, state)
        bar.update(n_tokens)
    return chunk_no + 1, corpus_tokens


def _prepend(first: Window, rest: Iterator[Window]) -> Iterator[Window]:
    yield first
    yield from rest
