"""Run the shards of a neuron index as Ray tasks, then merge them (optional ``ray`` extra).

Each task loads the model and runs ``index_neurons`` for one shard ``i/n`` into
``SHARDS/shard-i``; the driver then merges every shard into ``out``. The shard folders must be
on a filesystem the driver can read (a shared volume on a cluster; any folder locally). Any
other engine works the same way: run ``lmtt index-neurons --shard i/n`` anywhere, then
``lmtt merge-index``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lmtt.errors import LmttError
from lmtt.index.neuron_index import IndexSettings


def _index_shard(
    model_spec: str, device: str, corpus: str, folder: str, settings: IndexSettings, shard
):
    from lmtt.index.neuron_index import index_neurons
    from lmtt.models import load_model

    model = load_model(model_spec, device=device)
    state = index_neurons(model, corpus, folder, settings, shard, progress=False)
    return folder, state.tokens


def run_on_ray(
    model_spec: str,
    corpus: str,
    out: str | Path,
    settings: IndexSettings,
    n_shards: int,
    shards_dir: str | Path | None = None,
    device: str = "cpu",
    address: str | None = None,
    cpus_per_task: float = 1,
) -> Path:
    """Index ``n_shards`` shards in parallel on Ray (``address``: a cluster, default local)."""
    try:
        import ray
    except ImportError as e:
        raise LmttError(
            "Ray is not installed: pip install 'lmtt[ray]' (or run the shards with "
            "`lmtt index-neurons --shard i/n` and merge them with `lmtt merge-index`)."
        ) from e
    if n_shards < 1:
        raise LmttError("--ray needs at least 1 shard.")
    shards_dir = Path(shards_dir or f"{out}-shards").resolve()
    settings = replace(settings, model=model_spec)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=cpus_per_task)(_index_shard)
        futures = [
            task.remote(
                model_spec,
                device,
                str(Path(corpus).resolve()),
                str(shards_dir / f"shard-{i}"),
                settings,
                (i, n_shards),
            )
            for i in range(n_shards)
        ]
        folders = [folder for folder, _ in ray.get(futures)]
    finally:
        if started:
            ray.shutdown()
    from lmtt.index.neuron_merge import merge_index

    return merge_index(out, folders)
