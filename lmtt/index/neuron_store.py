"""Neuron index storage: Parquet files queried through DuckDB.

Schema version 1 (a folder written by ``lmtt.neuron_index``):

- ``lmtt-index.json``: ``schema_version``, ``settings`` (model, corpus, n_layers, d_mlp, top_k,
  window, batch_size, chunk_windows, context, max_tokens), ``complete``, ``n_shards``,
  ``corpus_documents``, ``corpus_tokens``, ``chunks``, ``skipped_invalid_utf8``.
- ``tokens/chunk-NNNNNN.parquet``: one row per corpus token: ``token_index`` (int64, global,
  in corpus order), ``doc_id`` (string), ``position`` (int32, in its document), ``token_id``
  (int32), ``token`` (string piece), ``upos`` (string, CoNLL-U corpora only, else null).
- ``neurons.parquet``: ``layer`` (int16), ``neuron`` (int32), ``count`` (int64 tokens seen),
  ``mean``, ``max``, ``fraction_active`` (float32; active means > 0).
- ``examples.parquet``: the top-k per neuron: ``layer``, ``neuron``, ``rank`` (0 = strongest),
  ``activation`` (float32), ``token_index``, and the token's ``doc_id``, ``position``,
  ``token_id``, ``token``, ``upos``.

Anyone can query the folder with DuckDB: ``SELECT * FROM 'DIR/examples.parquet'``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from lmtt.errors import NeuronIndexError, check_index
from lmtt.index.manifest import read_manifest, write_manifest
from lmtt.io import atomic_path

SCHEMA_VERSION = 1
MANIFEST = "lmtt-index.json"


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def write_tables(folder: Path, topk, stats) -> None:
    """neurons.parquet from the statistics; examples.parquet from the top-k joined to tokens."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    L, N, k = topk.values.shape
    layer = torch.arange(L).view(L, 1).expand(L, N)
    neuron = torch.arange(N).view(1, N).expand(L, N)
    neurons = pa.table(
        {
            "layer": pa.array(layer.flatten().numpy(), pa.int16()),
            "neuron": pa.array(neuron.flatten().numpy(), pa.int32()),
            "count": pa.array([stats.count] * (L * N), pa.int64()),
            "mean": pa.array(stats.mean.flatten().numpy(), pa.float32()),
            "max": pa.array(stats.maximum.flatten().numpy(), pa.float32()),
            "fraction_active": pa.array(stats.fraction_active.flatten().numpy(), pa.float32()),
        }
    )
    with atomic_path(folder / "neurons.parquet") as tmp:
        pq.write_table(neurons, tmp)
    filled = topk.index.flatten() >= 0
    ranks = torch.arange(k).expand(L, N, k)
    top = pa.table(
        {
            "layer": pa.array(
                layer.unsqueeze(-1).expand(L, N, k).flatten()[filled].numpy(), pa.int16()
            ),
            "neuron": pa.array(
                neuron.unsqueeze(-1).expand(L, N, k).flatten()[filled].numpy(), pa.int32()
            ),
            "rank": pa.array(ranks.flatten()[filled].numpy(), pa.int16()),
            "activation": pa.array(topk.values.flatten()[filled].numpy(), pa.float32()),
            "token_index": pa.array(topk.index.flatten()[filled].numpy(), pa.int64()),
        }
    )
    tokens = _sql_path(folder / "tokens" / "chunk-*.parquet")
    with duckdb.connect() as con, atomic_path(folder / "examples.parquet") as tmp:
        con.register("top", top)
        con.execute(
            f"COPY (SELECT top.*, t.doc_id, t.position, t.token_id, t.token, t.upos FROM top "
            f"JOIN read_parquet({tokens}) t USING (token_index) "
            f"ORDER BY layer, neuron, rank) TO {_sql_path(tmp)} (FORMAT parquet)"
        )


def finalize(folder: Path, states: list) -> None:
    """Merge the shard states (``lmtt.index.neuron_index.ShardState``, in shard order), write
    neurons.parquet and examples.parquet, and mark the manifest complete."""
    topk, stats = states[0].topk, states[0].stats
    for st in states[1:]:
        topk, stats = topk.merge(st.topk), stats.merge(st.stats)
    write_tables(folder, topk, stats)
    manifest = read_neuron_manifest(folder)
    first = states[0]
    manifest.update(
        complete=True,
        n_shards=len(states),
        corpus_documents=first.corpus_documents,
        corpus_tokens=first.corpus_tokens,
        corpus_hash=first.corpus_hash,
        chunks=first.chunks_total,
        skipped_invalid_utf8=first.skipped_invalid_utf8,
    )
    write_manifest(folder / MANIFEST, manifest)


@dataclass(frozen=True)
class Example:
    """One top-activating corpus token of a neuron, with its context."""

    rank: int
    activation: float
    token_index: int
    doc_id: str
    position: int
    token: str
    upos: str | None
    left: str  # context before the token (same document)
    right: str  # context after it


@dataclass(frozen=True)
class NeuronSummary:
    layer: int
    neuron: int
    count: int
    mean: float
    max: float
    fraction_active: float


@dataclass(frozen=True)
class TokenNeuron:
    """A neuron whose top examples include a given token."""

    layer: int
    neuron: int
    hits: int  # how many of its top-k examples are this token
    max_activation: float


def read_neuron_manifest(folder: Path) -> dict:
    """The manifest of a neuron-index folder (finished or not), schema checked."""
    return read_manifest(
        folder / MANIFEST, SCHEMA_VERSION, NeuronIndexError, "a neuron index", "lmtt index-neurons"
    )


class NeuronIndex:
    """A finished neuron index folder, queried with DuckDB.

    Each query opens its own short-lived in-memory DuckDB connection over the Parquet files
    (about 15 ms), so an index object is safe to share between threads and holds no handle.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.manifest = read_neuron_manifest(self.folder)
        if not self.manifest.get("complete"):
            raise NeuronIndexError(
                f"{self.folder} is an unfinished index: run the same `lmtt index-neurons` "
                "command again to resume it, or `lmtt merge-index` to merge its shards."
            )
        self.settings = self.manifest["settings"]

    @property
    def n_layers(self) -> int:
        return int(self.settings["n_layers"])

    @property
    def d_mlp(self) -> int:
        return int(self.settings["d_mlp"])

    @property
    def model(self) -> str:
        return str(self.settings["model"])

    def _query(self, sql: str, params: list) -> list[tuple]:
        import duckdb

        try:
            with duckdb.connect() as con:
                for name, files in (
                    ("tokens", self.folder / "tokens" / "chunk-*.parquet"),
                    ("examples", self.folder / "examples.parquet"),
                    ("neurons", self.folder / "neurons.parquet"),
                ):
                    path = _sql_path(files)
                    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({path})")
                return con.execute(sql, params).fetchall()
        except duckdb.Error as e:
            first = str(e).strip().splitlines()[0][:200]
            raise NeuronIndexError(
                f"{self.folder} is damaged ({first}). Rebuild it with `lmtt index-neurons`."
            ) from None

    def check_neuron(self, layer: int, neuron: int) -> None:
        check_index("Layer", layer, self.n_layers)
        check_index("Neuron", neuron, self.d_mlp)

    def summary(self, layer: int, neuron: int) -> NeuronSummary:
        self.check_neuron(layer, neuron)
        row = self._query(
            "SELECT count, mean, max, fraction_active FROM neurons WHERE layer = ? AND neuron = ?",
            [layer, neuron],
        )[0]
        return NeuronSummary(layer, neuron, int(row[0]), *map(float, row[1:]))

    def top_examples(
        self, layer: int, neuron: int, k: int | None = None, context: int | None = None
    ) -> list[Example]:
        """The neuron's strongest corpus tokens, each with ``context`` tokens either side."""
        self.check_neuron(layer, neuron)
        k = int(self.settings["top_k"] if k is None else k)
        context = int(self.settings["context"] if context is None else context)
        rows = self._query(
            "SELECT rank, activation, token_index, doc_id, position, token, upos FROM examples "
            "WHERE layer = ? AND neuron = ? AND rank < ? ORDER BY rank",
            [layer, neuron, k],
        )
        around = self._query(
            "SELECT e.rank, t.token_index - e.token_index AS offset, t.token FROM examples e "
            "JOIN tokens t ON t.doc_id = e.doc_id AND t.token_index BETWEEN "
            "e.token_index - ? AND e.token_index + ? "
            "WHERE e.layer = ? AND e.neuron = ? AND e.rank < ? ORDER BY e.rank, t.token_index",
            [context, context, layer, neuron, k],
        )
        left: dict[int, list[str]] = {}
        right: dict[int, list[str]] = {}
        for rank, offset, token in around:
            if offset:
                (left if offset < 0 else right).setdefault(rank, []).append(token)
        return [
            Example(
                int(r[0]),
                float(r[1]),
                int(r[2]),
                r[3],
                int(r[4]),
                r[5],
                r[6],
                "".join(left.get(r[0], [])),
                "".join(right.get(r[0], [])),
            )
            for r in rows
        ]

    def upos_histogram(self, layer: int, neuron: int) -> dict[str, int]:
        """UPOS tag counts over the neuron's top examples (empty for non-CoNLL-U corpora)."""
        self.check_neuron(layer, neuron)
        rows = self._query(
            "SELECT upos FROM examples WHERE layer = ? AND neuron = ? AND upos IS NOT NULL",
            [layer, neuron],
        )
        return dict(Counter(r[0] for r in rows).most_common())

    def neurons_for_token(self, token: str, limit: int = 20) -> list[TokenNeuron]:
        """Neurons whose top examples most often are ``token`` (matched without surrounding
        whitespace), by number of hits, then by strongest activation."""
        if not token.strip():
            raise NeuronIndexError("Give a non-blank token to look up.")
        rows = self._query(
            "SELECT layer, neuron, count(*) AS hits, max(activation) AS best FROM examples "
            "WHERE trim(token) = trim(?) GROUP BY layer, neuron "
            "ORDER BY hits DESC, best DESC, layer, neuron LIMIT ?",
            [token, limit],
        )
        return [TokenNeuron(int(a), int(b), int(c), float(d)) for a, b, c, d in rows]


def open_index(folder: str | Path) -> NeuronIndex:
    return NeuronIndex(folder)
