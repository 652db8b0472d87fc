"""Build a neuron index: top-activating corpus tokens and statistics for every MLP neuron.

The corpus is cut into windows (``lmtt.windows``) and the windows into *chunks* of
``chunk_windows`` windows. Chunk ``c`` belongs to shard ``c % n_shards``; a shard runs its chunks
in order, folding each into a running :class:`NeuronTopK` / :class:`NeuronStats` that is
checkpointed after every chunk (``state/shard-i-of-n.pt``). Interrupting and re-running continues
after the last finished chunk; shards merge exactly (top-k merge and fixed-point sums are
associative), so ``--shard i/n`` on any engine followed by ``merge_index`` equals one run.

Storage (schema version 1, written by :func:`finalize`; read by ``lmtt.store``):
``lmtt-index.json`` manifest, ``tokens/chunk-NNNNNN.parquet`` (every corpus token),
``neurons.parquet`` (per-neuron statistics) and ``examples.parquet`` (top-k per neuron).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import torch

from lmtt.corpus.readers import ReadReport, read_corpus
from lmtt.corpus.windows import Window, windows
from lmtt.errors import NeuronIndexError, NonFiniteActivationError
from lmtt.index.manifest import write_manifest
from lmtt.index.neuron_store import MANIFEST, SCHEMA_VERSION, read_neuron_manifest, write_tables
from lmtt.index.neuron_topk import NeuronStats, NeuronTopK
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
        for name in ("top_k", "window", "batch_size", "chunk_windows"):
            if getattr(self, name) < 1:
                raise NeuronIndexError(f"--{name.replace('_', '-')} must be at least 1.")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise NeuronIndexError("--max-tokens must be at least 1.")


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


def state_path(folder: Path, shard: int, n_shards: int) -> Path:
    return folder / "state" / f"shard-{shard:04d}-of-{n_shards:04d}.pt"


def prepare_folder(folder: Path, settings: IndexSettings) -> None:
    """Create the folder or check it is this job's own (same settings); refuse anything else."""
    manifest = folder / MANIFEST
    if manifest.exists():
        theirs = read_neuron_manifest(folder)["settings"]
        ours = asdict(settings)
        diff = {k: (theirs.get(k), v) for k, v in ours.items() if theirs.get(k) != v}
        if diff:
            lines = ", ".join(f"{k}: folder has {a!r}, asked {b!r}" for k, (a, b) in diff.items())
            raise NeuronIndexError(
                f"{folder} holds an index built with other settings ({lines}). Use the same "
                "settings to resume it, or a new --out folder."
            )
        return
    if folder.exists() and any(folder.iterdir()):
        raise NeuronIndexError(
            f"{folder} is not empty and is not an lmtt index (no {MANIFEST}). Refusing to write "
            "into it: pass a new or empty --out folder."
        )
    folder.mkdir(parents=True, exist_ok=True)
    write_manifest(manifest, {"schema_version": SCHEMA_VERSION, "settings": asdict(settings)})


def save_state(path: Path, state: ShardState) -> None:
    """Atomic checkpoint: a crash leaves the previous state intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    data = asdict(state) | {"topk": asdict(state.topk), "stats": asdict(state.stats)}
    torch.save(data, tmp)
    os.replace(tmp, path)


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
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


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
    """
    from tqdm.auto import tqdm

    settings.check()
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise NeuronIndexError(f"--shard {i}/{n}: expected i/n with 0 <= i < n.")
    folder = Path(out)
    report = ReadReport()
    wins = windows(
        read_corpus(corpus, report), model.tokenizer, settings.window, settings.max_tokens
    )
    first = next(wins, None)
    if first is None:
        raise NeuronIndexError(
            f"Corpus {corpus} has no text to index ({report.documents} documents, "
            f"{report.skipped_invalid_utf8} lines skipped as invalid UTF-8)."
        )
    prepare_folder(folder, settings)
    path = state_path(folder, i, n)
    state = load_state(path) if path.exists() else new_state(model, settings, shard)
    if state.complete:
        return state
    label = "indexing" if n == 1 else f"indexing shard {i}/{n}"
    with tqdm(desc=label, unit="tok", unit_scale=True, disable=not progress, smoothing=0.1) as bar:
        chunks, corpus_tokens = _run_chunks(
            model, _prepend(first, wins), folder, path, settings, state, bar
        )
    state.complete, state.chunks_total = True, chunks
    state.corpus_documents, state.corpus_tokens = report.documents, corpus_tokens
    state.skipped_invalid_utf8 = report.skipped_invalid_utf8
    save_state(path, state)
    if n == 1:
        finalize(folder, [state])
    return state


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


def _run_chunks(model, wins, folder, path, settings, state, bar) -> tuple[int, int]:
    """Index this shard's chunks that are not done yet, checkpointing after each; returns
    (number of chunks, corpus tokens) of the whole corpus."""
    corpus_tokens = chunk_no = 0
    for chunk_no, chunk in enumerate(_chunks(wins, settings.chunk_windows)):
        n_tokens = sum(w.n_corpus_tokens for w in chunk)
        corpus_tokens += n_tokens
        if chunk_no % state.n_shards != state.shard or chunk_no < state.next_chunk:
            continue
        index_chunk(model, chunk, settings.batch_size, state.topk, state.stats)
        write_tokens(model, folder, chunk_no, chunk)
        state.next_chunk, state.tokens = chunk_no + 1, state.tokens + n_tokens
        save_state(path, state)
        bar.update(n_tokens)
    return chunk_no + 1, corpus_tokens


def _prepend(first: Window, rest: Iterator[Window]) -> Iterator[Window]:
    yield first
    yield from rest


def merge_index(out: str | Path, sources: list[str | Path]) -> Path:
    """Merge the shard states found in ``sources`` (folders) into a finished index at ``out``."""
    folder = Path(out)
    found: dict[int, tuple[Path, ShardState]] = {}
    settings = None
    for src in map(Path, sources):
        theirs = read_neuron_manifest(src)["settings"]
        if settings is not None and theirs != settings:
            raise NeuronIndexError(f"{src} was built with other settings than {sources[0]}.")
        settings = theirs
        for path in sorted((src / "state").glob("shard-*.pt")):
            st = load_state(path)
            if st.shard in found:
                raise NeuronIndexError(
                    f"Shard {st.shard} appears twice ({found[st.shard][0]}, {src})."
                )
            found[st.shard] = (src, st)
    if not found:
        raise NeuronIndexError("No shard states found in " + ", ".join(map(str, sources)) + ".")
    n = {st.n_shards for _, st in found.values()}
    if len(n) != 1:
        raise NeuronIndexError(f"The shards come from different splits: n = {sorted(n)}.")
    (n_shards,) = n
    missing = sorted(set(range(n_shards)) - set(found))
    unfinished = sorted(s for s, (_, st) in found.items() if not st.complete)
    if missing or unfinished:
        raise NeuronIndexError(
            f"Cannot merge yet: shards missing {missing}, unfinished {unfinished} (of {n_shards})."
        )
    prepare_folder(folder, IndexSettings(**settings))
    for src, _ in found.values():
        if src.resolve() != folder.resolve():
            (folder / "tokens").mkdir(exist_ok=True)
            for f in (src / "tokens").glob("chunk-*.parquet"):
                shutil.copy2(f, folder / "tokens" / f.name)
    finalize(folder, [found[s][1] for s in range(n_shards)])
    return folder


def finalize(folder: Path, states: list[ShardState]) -> None:
    """Merge shard states (in shard order) and write neurons.parquet and examples.parquet."""
    topk, stats = states[0].topk, states[0].stats
    for st in states[1:]:
        topk, stats = topk.merge(st.topk), stats.merge(st.stats)
    write_tables(folder, topk, stats)
    manifest = read_neuron_manifest(folder)
    last = states[0]
    manifest.update(
        complete=True,
        n_shards=len(states),
        corpus_documents=last.corpus_documents,
        corpus_tokens=last.corpus_tokens,
        chunks=last.chunks_total,
        skipped_invalid_utf8=last.skipped_invalid_utf8,
    )
    write_manifest(folder / MANIFEST, manifest)
