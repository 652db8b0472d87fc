"""A finished (or growing) batch folder, queried with DuckDB: ``open_batch(DIR)``.

The four tables are views over the folder's Parquet files: ``prompts`` (one row per prompt),
``edges`` (its routes), ``heads`` (every head's contribution at the target position, and
whether the routes carry it) and ``neurons`` (the top neurons of each MLP there). Each query
opens a short-lived in-memory connection, so a handle is safe to share between threads.
"""

from __future__ import annotations

from pathlib import Path

from lmtt.index.batch import MANIFEST, TABLES, VERSION, BatchError
from lmtt.index.manifest import read_manifest

HEAD_SUMMARY = """
WITH measured AS (  -- each prompt's attention edges led by the head, their summed effects
    SELECT prompt_id, layer, top_head AS head, sum(effect) AS effect FROM edges
    WHERE kind = 'attention' AND top_head >= 0 AND NOT isnan(effect) GROUP BY ALL
)
SELECT h.layer, h.head, avg(h.contribution) AS mean_contribution,
       max(h.contribution) AS max_contribution,
       avg(CAST(h.on_routes AS DOUBLE)) AS route_share, avg(m.effect) AS mean_effect,
       count(*) AS prompts
FROM heads h LEFT JOIN measured m USING (prompt_id, layer, head)
GROUP BY h.layer, h.head ORDER BY mean_contribution DESC
"""
NEURON_SUMMARY = """
SELECT layer, neuron, avg(contribution) AS mean_contribution, max(contribution) AS max_contribution,
       count(*) AS prompts_in_top
FROM neurons GROUP BY layer, neuron ORDER BY prompts_in_top DESC, mean_contribution DESC
"""


class BatchResults:
    """The tables of a batch folder (``sql`` runs any query over them)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder / MANIFEST, VERSION, BatchError,
                                      "a batch folder", "lmtt batch")  # fmt: skip
        missing = [t for t in TABLES if not any((self.folder / t).glob("*.parquet"))]
        if missing:
            raise BatchError(f"{self.folder} has no {missing[0]} yet: run `lmtt batch` on it.")

    def _connect(self):
        import duckdb

        con = duckdb.connect()
        for table in TABLES:
            files = str(self.folder / table / "*.parquet").replace("'", "''")
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM "
                        f"read_parquet('{files}', union_by_name=true)")  # fmt: skip
        return con

    def sql(self, query: str, params: list | None = None):
        """A pandas DataFrame of ``query`` over the views prompts, edges, heads, neurons and
        diffs."""
        import duckdb

        con = self._connect()
        try:
            return con.execute(query, params or []).df()
        except duckdb.Error as e:
            raise BatchError(f"The query failed: {str(e).splitlines()[0]}") from None
        finally:
            con.close()

    def head_summary(self):
        """Per head: mean and max contribution at the target, share of prompts whose routes
        carry it, the mean measured effect of the attention edges it leads (a verified batch;
        else empty), prompts seen."""
        return self.sql(HEAD_SUMMARY)

    def neuron_summary(self):
        """Per neuron that was in some prompt's top: mean and max contribution, prompts."""
        return self.sql(NEURON_SUMMARY)

    def prompts_by_head(self, layer: int, head: int, k: int = 20):
        """The prompts where head ``layer``/``head`` contributes most, largest first."""
        return self.sql(
            "SELECT p.prompt_id, p.prompt, p.target, h.contribution, h.on_routes FROM heads h "
            "JOIN prompts p USING (prompt_id) WHERE h.layer = ? AND h.head = ? "
            "ORDER BY h.contribution DESC LIMIT ?",
            [layer, head, k],
        )

    def prompts_by_neuron(self, layer: int, neuron: int, k: int = 20):
        """The prompts where neuron ``layer``/``neuron`` is among the top and contributes
        most, largest first."""
        return self.sql(
            "SELECT p.prompt_id, p.prompt, p.target, n.contribution FROM neurons n "
            "JOIN prompts p USING (prompt_id) WHERE n.layer = ? AND n.neuron = ? "
            "ORDER BY n.contribution DESC LIMIT ?",
            [layer, neuron, k],
        )


def open_batch(folder: str | Path) -> BatchResults:
    return BatchResults(folder)
