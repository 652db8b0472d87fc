"""Merge the shards of a neuron index (``--shard i/n`` on any engine) into one finished index."""

from __future__ import annotations

import shutil
from pathlib import Path

from lmtt.errors import NeuronIndexError
from lmtt.index.jobs import FolderLock
from lmtt.index.neuron_index import (
    IndexSettings,
    ShardState,
    check_folder,
    load_state,
    prepare_folder,
)
from lmtt.index.neuron_store import finalize, read_neuron_manifest
from lmtt.io import check_output, disk_errors


def _shard_states(sources: list[Path]) -> tuple[dict, dict[int, tuple[Path, ShardState]]]:
    """The sources' common manifest and every shard state found, by shard number."""
    found: dict[int, tuple[Path, ShardState]] = {}
    manifest = None
    for src in sources:
        theirs = read_neuron_manifest(src)
        if manifest is not None and theirs["settings"] != manifest["settings"]:
            raise NeuronIndexError(f"{src} was built with other settings than {sources[0]}.")
        if manifest is not None and theirs.get("corpus_files") != manifest.get("corpus_files"):
            raise NeuronIndexError(f"{src} indexed other corpus files than {sources[0]}.")
        manifest = theirs
        for path in sorted((src / "state").glob("shard-*.pt")):
            st = load_state(path)
            if st.shard in found:
                raise NeuronIndexError(
                    f"Shard {st.shard} appears twice ({found[st.shard][0]}, {src})."
                )
            found[st.shard] = (src, st)
    if not found:
        raise NeuronIndexError("No shard states found in " + ", ".join(map(str, sources)) + ".")
    return manifest, found


def _check_complete(found: dict[int, tuple[Path, ShardState]]) -> int:
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
    if len({st.corpus_hash for _, st in found.values()}) != 1:
        raise NeuronIndexError(
            "The shards read different corpus text (the corpus changed between them): "
            "run them again on one corpus."
        )
    return n_shards


def merge_index(out: str | Path, sources: list[str | Path]) -> Path:
    """Merge the shard states found in ``sources`` (folders) into a finished index at ``out``."""
    sources = [Path(s) for s in sources]
    manifest, found = _shard_states(sources)
    n_shards = _check_complete(found)
    folder = check_output(out, folder=True)
    check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with FolderLock(folder), disk_errors(folder, resumable=True):
        settings = IndexSettings(**manifest["settings"])
        prepare_folder(folder, settings, manifest.get("corpus_files"))
        for src, _ in found.values():
            if src.resolve() != folder.resolve():
                (folder / "tokens").mkdir(exist_ok=True)
                for f in (src / "tokens").glob("chunk-*.parquet"):
                    shutil.copy2(f, folder / "tokens" / f.name)
        finalize(folder, [found[s][1] for s in range(n_shards)])
    return folder
