"""Routes for a file of prompts: ``run_batch(model, prompts_file, out, settings)``.

For each prompt (its prediction at the last position; the row's ``target`` token, else the
model's top token): the routes at the threshold, every head's contribution to the attention
block at the target position (and whether a kept attention edge carries it), and the
``top_neurons`` neurons contributing most to each MLP there; with ``verify``, each edge's
measured knockout effect (a share of the metric's span: log p(target), or its contrast with
the row's foil) and the routes' completeness. Prompts go through the model
``batch_size`` at a time (one padded forward pass: ``lmtt.models.batched``) and each chunk's
rows are written as Parquet files (``prompts/``, ``edges/``, ``heads/``, ``neurons/``) before
the shard's state records the chunk, so a job killed at any point resumes with the same
command, redoing at most the chunk it was in; a chunk's files are replaced whole. ``--shard
i/n`` takes every n-th prompt from the i-th: shards hold disjoint prompts, so their tables
concatenate exactly, and several shards may run into one folder at once (each holds its own
lock; on several machines, a shared folder), as :func:`run_batch_on_ray` does.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lmtt.corpus.prompt_files import PromptRow, file_fingerprint, read_prompt_file
from lmtt.errors import EmptyRoutesError, IndexFolderError
from lmtt.flow import contributions as C
from lmtt.flow.graph import routes
from lmtt.index.jobs import FolderLock
from lmtt.index.manifest import read_manifest, write_manifest
from lmtt.io import atomic_path
from lmtt.models.batched import run_traces
from lmtt.models.trace import prepare_tokens, route_kinds

MANIFEST = "batch.json"
VERSION = 1
TABLES = ("prompts", "edges", "heads", "neurons")


class BatchError(IndexFolderError):
    """A batch folder or job problem."""


@dataclass(frozen=True)
class BatchSettings:
    threshold: float = 0.04
    batch_size: int = 8
    top_neurons: int = 16
    verify: bool = False  # also each edge's knockout effect and the routes' completeness


def _verified(model, trace, graph, target: int, row: PromptRow) -> tuple[dict, float]:
    """Each edge's measured knockout effect (a share of the metric's span) and the routes'
    completeness, for log p(target) (the contrast with the row's foil, when it has one)."""
    from lmtt.causal.edges import verify_edges
    from lmtt.causal.faithfulness import faithfulness
    from lmtt.causal.metric import make_metric

    metric = make_metric(model, trace, target=target, foil=row.foil or None,
                         position=trace.n_tokens - 1)  # fmt: skip
    f = faithfulness(model, trace, [graph], metric, complement=False)
    effects = verify_edges(model, trace, graph, metric, attribution=False)
    span = f.clean - f.baseline
    shares = {e.id: float(x) / span if span else float("nan")
              for e, x in zip(effects.edges, effects.effect, strict=True)}  # fmt: skip
    return shares, f.completeness[0]


def _target(model, trace, row: PromptRow) -> int:
    """The row's target token id (one token), else the top prediction at the last position."""
    if not row.target:
        return int(trace.logits[-1].argmax())
    from lmtt.causal.metric import token_id

    return token_id(model, row.target, "Target")


def prompt_rows(model, trace, row: PromptRow, prompt_id: int, settings: BatchSettings) -> dict:
    """The rows of every table for one prompt (lists of dicts)."""
    pos, L = trace.n_tokens - 1, trace.n_layers
    target = _target(model, trace, row)
    try:
        graph = routes(trace, [pos], settings.threshold)
        edges = graph.edges
    except EmptyRoutesError:
        graph, edges = None, ()
    effects, completeness = {}, float("nan")
    if settings.verify and graph is not None:
        effects, completeness = _verified(model, trace, graph, target, row)
    carried = {(e.target.layer, h) for e in edges if e.kind == "attention"
               for h, w in enumerate(e.heads or ()) if w >= settings.threshold}  # fmt: skip
    heads, neurons = [], []
    for layer in range(L):
        per_head = C.attention_contributions(trace, layer, [pos]).per_head[0].tolist()
        heads += [{"prompt_id": prompt_id, "layer": layer, "head": h, "contribution": c,
                   "on_routes": (layer, h) in carried} for h, c in enumerate(per_head)]  # fmt: skip
        n = C.neuron_contributions(trace, layer, [pos]).neurons[0]
        top = n.topk(min(settings.top_neurons, len(n)))
        pairs = zip(top.values.tolist(), top.indices.tolist(), strict=True)
        neurons += [{"prompt_id": prompt_id, "layer": layer, "neuron": i, "contribution": v}
                    for v, i in pairs]  # fmt: skip
    probs = trace.logits[pos].float().softmax(-1)
    prompt = {"prompt_id": prompt_id, "prompt": row.prompt, "n_tokens": trace.n_tokens,
              "target_pos": pos, "target": trace.vocab[target], "target_prob": float(probs[target]),
              "top_token": trace.vocab[int(probs.argmax())], "n_edges": len(edges),
              "completeness": completeness}  # fmt: skip
    edge_rows = [{"prompt_id": prompt_id, "layer": e.target.layer, "kind": e.kind,
                  "source": e.source.id, "target": e.target.id, "weight": e.weight,
                  "top_head": -1 if e.top_head is None else e.top_head,
                  "effect": effects.get(e.id, float("nan"))} for e in edges]  # fmt: skip
    return {"prompts": [prompt], "edges": edge_rows, "heads": heads, "neurons": neurons}


def _write_chunk(folder: Path, name: str, rows: dict) -> None:
    """Every table's Parquet file of one chunk (each written whole, atomically)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for table in TABLES:
        (folder / table).mkdir(exist_ok=True)
        data = pa.Table.from_pylist(rows[table]) if rows[table] else _empty(table)
        with atomic_path(folder / table / f"{name}.parquet") as tmp:
            pq.write_table(data, tmp)


def _empty(table: str):
    import pyarrow as pa

    columns = {"edges": {"prompt_id": pa.int64(), "layer": pa.int64(), "kind": pa.string(),
                         "source": pa.string(), "target": pa.string(), "weight": pa.float64(),
                         "top_head": pa.int64(), "effect": pa.float64()}}  # fmt: skip
    return pa.schema(columns.get(table, {"prompt_id": pa.int64()})).empty_table()


def _manifest(model, prompts_file: Path, n_prompts: int, settings: BatchSettings) -> dict:
    return {"kind": "lmtt batch", "schema_version": VERSION, "model": model.name,
            "prompts_file": str(prompts_file), "prompts_sha256": file_fingerprint(prompts_file),
            "n_prompts": n_prompts, "settings": asdict(settings)}  # fmt: skip


def _check_same_job(folder: Path, want: dict) -> None:
    """Refuse to resume a folder begun with another model, prompts file or settings."""
    have = read_manifest(folder / MANIFEST, VERSION, BatchError, "a batch folder", "lmtt batch")
    for key in ("model", "prompts_sha256", "settings", "shards"):
        if have.get(key) != want[key]:
            raise BatchError(
                f"{folder} holds a batch of another {key.replace('_', ' ')} "
                f"({have.get(key)!r}): pass a new --out folder, or the same arguments to resume."
            )


@contextmanager
def _manifest_lock(folder: Path) -> Iterator[None]:
    """Wait for, then hold, the folder's manifest lock (an flock the OS drops if we die)."""
    fd = os.open(folder / "locks" / "manifest.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def check_rows(model, rows: list[PromptRow], ids: list[int]) -> None:
    """Refuse, naming the row, a prompt the model cannot take or a target or foil that is not
    one token (all of them checked before the job starts)."""
    from lmtt.causal.metric import token_id
    from lmtt.errors import LmttError
    from lmtt.models.trace import prepare_tokens

    for i in ids:
        row = rows[i]
        try:
            prepare_tokens(model, row.prompt)
            for what, token in (("Target", row.target), ("Foil", row.foil)):
                if token:
                    token_id(model, token, what)
        except LmttError as e:
            raise BatchError(f"Prompt {i} (row {i + 1}) of the file: {e}") from None


def _state_path(folder: Path, shard: tuple[int, int]) -> Path:
    return folder / f"state-{shard[0]}-of-{shard[1]}.json"


def _done_chunks(path: Path) -> set[int]:
    return set(json.loads(path.read_text())["done"]) if path.is_file() else set()


def run_batch(
    model, prompts_file: str | Path, out: str | Path, settings: BatchSettings = BatchSettings(),
    shard: tuple[int, int] = (0, 1), progress: bool = True,
) -> Path:  # fmt: skip
    """Run (or resume) shard ``i/n`` of the batch of ``prompts_file`` into ``out``."""
    if not 0 <= shard[0] < shard[1]:
        raise BatchError(f"Shard {shard[0]}/{shard[1]} does not exist: use i/n with 0 <= i < n.")
    prompts_file, folder = Path(prompts_file), Path(out)
    rows = read_prompt_file(prompts_file)
    mine = list(range(shard[0], len(rows), shard[1]))
    check_rows(model, rows, mine)  # a bad row is refused before any work, not mid-job
    locks = folder / "locks" / f"shard-{shard[0]}-of-{shard[1]}"
    locks.mkdir(parents=True, exist_ok=True)
    with FolderLock(locks):  # shards of one folder run side by side; a shard runs once
        with _manifest_lock(folder):  # one shard at a time checks or writes the manifest
            want = _manifest(model, prompts_file, len(rows), settings) | {"shards": shard[1]}
            if (folder / MANIFEST).exists():
                _check_same_job(folder, want)
            else:
                write_manifest(folder / MANIFEST, want)
        state = _state_path(folder, shard)
        done = _done_chunks(state)
        chunks = [
            mine[i : i + settings.batch_size] for i in range(0, len(mine), settings.batch_size)
        ]
        bar = tqdm(total=len(mine), desc="batch", unit="prompt", disable=not progress)
        bar.update(sum(len(c) for k, c in enumerate(chunks) if k in done))
        for k, ids in enumerate(chunks):
            if k in done:
                continue
            _run_chunk(model, rows, ids, folder, f"part-{shard[0]}-{shard[1]}-{k:06d}", settings)
            done.add(k)
            write_manifest(state, {"shard": list(shard), "done": sorted(done),
                                   "chunks": len(chunks)})  # fmt: skip
            bar.update(len(ids))
        bar.close()
    return folder


def _run_chunk(model, rows, ids: list[int], folder: Path, name: str, settings) -> None:
    tokens = [prepare_tokens(model, rows[i].prompt) for i in ids]
    kinds = route_kinds(model, max(len(t) for t in tokens))  # short prompts keep patterns
    traces = run_traces(model, tokens, kinds)
    tables: dict[str, list] = {t: [] for t in TABLES}
    with torch.inference_mode():
        for i, trace in zip(ids, traces, strict=True):
            for table, found in prompt_rows(model, trace, rows[i], i, settings).items():
                tables[table] += found
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
