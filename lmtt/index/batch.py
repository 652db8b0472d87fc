"""Routes for a file of prompts: ``run_batch(model, prompts_file, out, settings)``.

Each prompt's rows (its routes, head and neuron contributions at the prediction explained,
measured edge effects with ``verify``, and its routes against its counterfactual's where the
row has one) are :mod:`lmtt.index.batch_explain`'s and :mod:`lmtt.index.batch_rows`'s. Prompts
(and counterfactuals) go through the model ``batch_size`` at a time, in order of length (one
padded forward pass, walked as one stacked trace: ``lmtt.models.batched``), and each chunk's
rows are written as Parquet files (one folder per table) before the shard's state
records the chunk, so a job killed at any point resumes with the same command, redoing at
most the chunk it was in; a chunk's files are replaced whole. ``--shard i/n`` takes every
n-th prompt from the i-th: shards hold disjoint prompts, so their tables concatenate exactly,
and several shards may run into one folder at once (each holds its own lock; on several
machines, a shared folder), as :func:`run_batch_on_ray` does.
"""

from __future__ import annotations

import fcntl
import gc
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lmtt.corpus.prompt_files import PromptRow, file_fingerprint, read_prompt_file
from lmtt.errors import IndexFolderError
from lmtt.index.batch_explain import explain
from lmtt.index.batch_rows import TABLES, BatchSettings, empty_table, prompt_rows
from lmtt.index.jobs import FolderLock
from lmtt.index.manifest import read_manifest, write_manifest
from lmtt.io import atomic_path
from lmtt.models.trace import prepare_tokens, route_kinds

MANIFEST = "batch.json"
VERSION = 2  # 2: the diffs table and the prompts' counterfactual columns
DEFAULTS = BatchSettings()
# A shard's prompts go into chunks in order of token length (then row): like lengths share a
# padded pass, so less of it is padding. Folders begun by older versions (chunks in row
# order) are refused for resuming, never mixed.
CHUNKING = "by length"  # each shard's state holds its chunks' fingerprint
__all__ = ["TABLES", "BatchSettings", "explain", "prompt_rows", "run_batch", "run_batch_on_ray"]


class BatchError(IndexFolderError):
    """A batch folder or job problem."""


def _write_chunk(folder: Path, name: str, rows: dict) -> None:
    """Every table's Parquet file of one chunk (each written whole, atomically)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for table in TABLES:
        (folder / table).mkdir(exist_ok=True)
        data = pa.Table.from_pylist(rows[table]) if rows[table] else empty_table(table)
        with atomic_path(folder / table / f"{name}.parquet") as tmp:
            pq.write_table(data, tmp)


def _manifest(model, prompts_file: Path, n_prompts: int, settings: BatchSettings) -> dict:
    return {"kind": "lmtt batch", "schema_version": VERSION, "model": model.name,
            "prompts_file": str(prompts_file), "prompts_sha256": file_fingerprint(prompts_file),
            "n_prompts": n_prompts, "settings": asdict(settings),
            "chunking": CHUNKING}  # fmt: skip


def _check_same_job(folder: Path, want: dict) -> None:
    """Refuse to resume a folder begun with another model, prompts file, settings, number of
    shards or way of chunking (an older lmtt's)."""
    have = read_manifest(folder / MANIFEST, VERSION, BatchError, "a batch folder", "lmtt batch")
    if have.get("chunking") != want["chunking"]:
        raise BatchError(
            f"{folder} was begun by an older lmtt, whose chunks held other prompts: its tables "
            "still open (lmtt batch-query), but to go on, run the job into a new --out folder."
        )
    for key in ("model", "prompts_sha256", "settings", "shards"):
        if have.get(key) != want[key]:
            raise BatchError(
                f"{folder} holds a batch of another {key.replace('_', ' ')} "
                f"({have.get(key)!r}): pass a new --out folder, or the same arguments to resume."
            )


@contextmanager
def _frozen_heap() -> Iterator[None]:
    """Keep Python's cyclic garbage collector off the objects that outlive the job (the model,
    its vocabulary, the libraries): its full collections would scan them all again and again
    (about a tenth of a batch job's time on the demo model). What the job makes is collected
    as ever; the objects frozen go back to the collector when the job ends. Where something
    else froze the heap already (the host process, or a job running beside this one), it is
    left as it is."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def _manifest_lock(folder: Path) -> Iterator[None]:
    """Wait for, then hold, the folder's manifest lock (an flock the OS drops if we die)."""
    fd = os.open(folder / "locks" / "manifest.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def check_rows(model, rows: list[PromptRow], ids: list[int]) -> dict[int, tuple]:
    """Refuse, naming the row, a prompt the model cannot take or a target or foil that is not
    one token (all of them checked before the job starts). Returns each row's tokens, int32:
    (its prompt's, its counterfactual's or None), so the job tokenizes every text once."""
    from lmtt.causal.metric import token_id
    from lmtt.errors import LmttError

    tokens = {}
    for i in ids:
        row, where = rows[i], f"Prompt {i} (row {i + 1}) of the file"
        try:
            prompt = prepare_tokens(model, row.prompt).to(torch.int32)
            for what, token in (("Target", row.target), ("Foil", row.foil)):
                if token:
                    token_id(model, token, what)
        except LmttError as e:
            raise BatchError(f"{where}: {e}") from None
        try:
            other = prepare_tokens(model, row.counterfactual) if row.counterfactual else None
        except LmttError as e:
            raise BatchError(f"{where}, its counterfactual: {e}") from None
        tokens[i] = (prompt, None if other is None else other.to(torch.int32))
    return tokens


def _state_path(folder: Path, shard: tuple[int, int]) -> Path:
    return folder / f"state-{shard[0]}-of-{shard[1]}.json"


def _chunked(ids: list[int], tokens: dict, size: int) -> tuple[list[list[int]], str]:
    """A shard's chunks (its rows in order of length in a pass, the longer of prompt and
    counterfactual, then row) and their fingerprint."""
    order = sorted(ids, key=lambda i: (max(len(t) for t in tokens[i] if t is not None), i))
    chunks = [order[i : i + size] for i in range(0, len(order), size)]
    return chunks, hashlib.sha256(json.dumps(chunks).encode()).hexdigest()


def _done_chunks(path: Path, fingerprint: str) -> set[int]:
    """The chunks a shard's state records as written; refused if its chunks held other
    prompts (their lengths changed: another tokenizer under the same model name)."""
    if not path.is_file():
        return set()
    state = json.loads(path.read_text())
    if state.get("chunks_sha256") != fingerprint:
        raise BatchError(
            f"{path.parent}'s chunks held other prompts when it began (the tokenizer changed?): "
            "run the job into a new --out folder."
        )
    return set(state["done"])


def run_batch(
    model, prompts_file: str | Path, out: str | Path, settings: BatchSettings = DEFAULTS,
    shard: tuple[int, int] = (0, 1), progress: bool = True,
) -> Path:  # fmt: skip
    """Run (or resume) shard ``i/n`` of the batch of ``prompts_file`` into ``out``."""
    if not 0 <= shard[0] < shard[1]:
        raise BatchError(f"Shard {shard[0]}/{shard[1]} does not exist: use i/n with 0 <= i < n.")
    prompts_file, folder = Path(prompts_file), Path(out)
    rows = read_prompt_file(prompts_file)
    mine = list(range(shard[0], len(rows), shard[1]))
    tokens = check_rows(model, rows, mine)  # a bad row is refused before any work, not mid-job
    locks = folder / "locks" / f"shard-{shard[0]}-of-{shard[1]}"
    locks.mkdir(parents=True, exist_ok=True)
    with FolderLock(locks), _frozen_heap():  # shards of one folder run side by side, once each
        with _manifest_lock(folder):  # one shard at a time checks or writes the manifest
            want = _manifest(model, prompts_file, len(rows), settings) | {"shards": shard[1]}
            if (folder / MANIFEST).exists():
                _check_same_job(folder, want)
            else:
                write_manifest(folder / MANIFEST, want)
        state = _state_path(folder, shard)
        chunks, fingerprint = _chunked(mine, tokens, settings.batch_size)
        done = _done_chunks(state, fingerprint)
        bar = tqdm(total=len(mine), desc="batch", unit="prompt", disable=not progress)
        bar.update(sum(len(c) for k, c in enumerate(chunks) if k in done))
        for k, ids in enumerate(chunks):
            if k in done:
                continue
            name = f"part-{shard[0]}-{shard[1]}-{k:06d}"
            _run_chunk(model, rows, {i: tokens[i] for i in ids}, folder, name, settings)
            done.add(k)
            write_manifest(state, {"shard": list(shard), "done": sorted(done),
                                   "chunks": len(chunks),
                                   "chunks_sha256": fingerprint})  # fmt: skip
            bar.update(len(ids))
        bar.close()
    return folder


def _run_chunk(model, rows, chunk: dict[int, tuple], folder: Path, name: str, settings) -> None:
    """One chunk's prompts (row id -> its tokens, as :func:`check_rows` gives them; with their
    counterfactuals) in one batched pass, then its rows."""
    ids = list(chunk)
    with_cf = [i for i in ids if chunk[i][1] is not None]
    tokens = [chunk[i][0].long() for i in ids] + [chunk[i][1].long() for i in with_cf]
    kinds = route_kinds(model, max(len(t) for t in tokens))  # short prompts keep patterns
    found = explain(
        model, tokens, kinds, settings.threshold, settings.top_neurons, all_logits=settings.verify
    )  # verifying reads every logit
    counterfactuals = dict(zip(with_cf, found[len(ids) :], strict=True))
    tables: dict[str, list] = {t: [] for t in TABLES}
    with torch.inference_mode():
        for i, one in zip(ids, found[: len(ids)], strict=True):
            prompt = prompt_rows(model, one, rows[i], i, settings, counterfactuals.get(i))
            for table, table_rows in prompt.items():
                tables[table] += table_rows
    _write_chunk(folder, name, tables)


def _batch_shard(model_spec: str, device: str, prompts_file: str, out: str, settings, shard):
    from lmtt.models import load_model

    run_batch(load_model(model_spec, device=device), prompts_file, out, settings, shard, False)
    return shard


def run_batch_on_ray(
    model_spec: str, prompts_file: str | Path, out: str | Path, settings: BatchSettings,
    n_shards: int, device: str = "cpu", address: str | None = None, cpus_per_task: float = 1,
) -> Path:  # fmt: skip
    """Run the ``n_shards`` shards of a batch as Ray tasks into one folder (``address``: a
    cluster whose workers share the folder; default a local Ray)."""
    try:
        import ray
    except ImportError as e:
        raise BatchError(
            "Ray is not installed: pip install 'lmtt[ray]' (or run the shards with "
            "`lmtt batch --shard i/n`, into one shared folder)."
        ) from e
    if n_shards < 1:
        raise BatchError("--ray needs at least 1 shard.")
    read_prompt_file(prompts_file)  # refuse a bad file before any worker starts
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        gpus = 1 if str(device).startswith("cuda") else 0  # else Ray hides the GPU
        task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus)(_batch_shard)
        futures = [task.remote(model_spec, device, str(Path(prompts_file).resolve()),
                               str(Path(out).resolve()), settings, (i, n_shards))
                   for i in range(n_shards)]  # fmt: skip
        ray.get(futures)
    finally:
        if started:
            ray.shutdown()
    return Path(out)
