"""Tables (pandas DataFrames) shown by the app and exported as CSV."""

from __future__ import annotations

import pandas as pd

from lmtt.flow.graph import RouteGraph
from lmtt.flow.lens import LensResult
from lmtt.viz.text import token_label


def token_table(result: LensResult) -> pd.DataFrame:
    """Promoted (top) and suppressed (bottom) tokens side by side, with their logits."""
    return pd.DataFrame(
        {
            "promoted": [token_label(s.token) for s in result.top],
            "logit +": [round(s.logit, 3) for s in result.top],
            "suppressed": [token_label(s.token) for s in result.bottom],
            "logit −": [round(s.logit, 3) for s in result.bottom],
        }
    )


def edges_table(graph: RouteGraph) -> pd.DataFrame:
    """One row per route edge: kind, weight, both ends and the strongest head."""
    return pd.DataFrame(
        [
            {
                "kind": e.kind,
                "weight": e.weight,
                "source": e.source.id,
                "source_token": graph.tokens[e.source.pos],
                "target": e.target.id,
                "target_token": graph.tokens[e.target.pos],
                "top_head": e.top_head,
            }
            for e in graph.edges
        ]
    )
