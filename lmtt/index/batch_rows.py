"""One prompt's rows of a batch job's tables: ``prompt_rows(model, found, row, id, settings)``
(``found``: what :mod:`lmtt.index.batch_explain` found of the prompt).

Tables (each a list of dicts, written as Parquet by :mod:`lmtt.index.batch`):
- ``prompts``: the prompt, its target position and token, the target's probability, the top
  token, the routes' size and (verified) completeness, and the counterfactual, if any;
- ``edges``: the routes' edges with their weights (and measured effects when verified);
- ``heads``: every head's contribution to the attention block at the target position, and
  whether it is on the routes (``on_routes``: on some kept attention edge, its own part of
  the edge is at least the threshold);
- ``neurons``: the ``top_neurons`` neurons contributing most to each MLP there;
- ``diffs``: for a row with a counterfactual, its routes against the prompt's
  (:func:`lmtt.flow.diff.diff_routes`, aligned on their targets): each edge only in the
  prompt's routes, only in the counterfactual's, or in both with both weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmtt.corpus.prompt_files import PromptRow
from lmtt.flow.diff import diff_routes

TABLES = ("prompts", "edges", "heads", "neurons", "diffs")


@dataclass(frozen=True)
class BatchSettings:
    threshold: float = 0.04
    batch_size: int = 8
    top_neurons: int = 16
    verify: bool = False  # also each edge's knockout effect and the routes' completeness


def _verified(model, trace, graph, target: int, row: PromptRow, pos: int) -> tuple[dict, float]:
    """Each edge's measured knockout effect (a share of the metric's span) and the routes'
    completeness, for log p(target) (the contrast with the row's foil, when it has one)."""
    from lmtt.causal.edges import verify_edges
    from lmtt.causal.faithfulness import faithfulness
    from lmtt.causal.metric import make_metric

    metric = make_metric(model, trace, target=target, foil=row.foil or None, position=pos)
    f = faithfulness(model, trace, [graph], metric, complement=False)
    effects = verify_edges(model, trace, graph, metric, attribution=False)
    span = f.clean - f.baseline
    shares = {e.id: float(x) / span if span else float("nan")
              for e, x in zip(effects.edges, effects.effect, strict=True)}  # fmt: skip
    return shares, f.completeness[0]


def _target(model, logits, row: PromptRow) -> int:
    """The row's target token id (one token), else the top prediction (of ``logits`` [V])."""
    if not row.target:
        return int(logits.argmax())
    from lmtt.causal.metric import token_id

    return token_id(model, row.target, "Target")


def _head_rows(found, prompt_id: int, carried: set) -> list[dict]:
    """Every head's row: its contribution to its layer's attention block at the target."""
    return [{"prompt_id": prompt_id, "layer": layer, "head": h, "contribution": c,
             "on_routes": (layer, h) in carried}
            for layer, per_head in enumerate(found.per_head.tolist())
            for h, c in enumerate(per_head)]  # fmt: skip


def _neuron_rows(found, prompt_id: int) -> list[dict]:
    """The top neurons' rows of every layer's MLP at the target."""
    values, ids = found.neuron_values.tolist(), found.neuron_ids.tolist()
    return [{"prompt_id": prompt_id, "layer": layer, "neuron": i, "contribution": v}
            for layer in range(len(values))
            for v, i in zip(values[layer], ids[layer], strict=True)]  # fmt: skip


def prompt_rows(
    model, found, row: PromptRow, prompt_id: int, settings: BatchSettings, counterfactual=None
) -> dict:
    """The rows of every table for one prompt (lists of dicts) from its
    :class:`~lmtt.index.batch_explain.Explained` ``found``; ``counterfactual``: that of the
    row's counterfactual prompt, for the ``diffs`` table."""
    trace, pos, graph = found.trace, found.pos, found.graph
    target = _target(model, found.logits, row)
    edges = () if graph is None else graph.edges
    effects, completeness = {}, float("nan")
    if settings.verify and graph is not None:
        effects, completeness = _verified(model, trace, graph, target, row, pos)
    carried = {(e.target.layer, h) for e in edges if e.kind == "attention"
               for h, w in enumerate(e.heads or ()) if w >= settings.threshold}  # fmt: skip
    probs = found.logits.float().softmax(-1)
    prompt = {"prompt_id": prompt_id, "prompt": row.prompt, "n_tokens": trace.n_tokens,
              "target_pos": pos, "target": trace.vocab[target], "target_prob": float(probs[target]),
              "top_token": trace.vocab[int(probs.argmax())], "n_edges": len(edges),
              "completeness": completeness, "counterfactual": row.counterfactual,
              "counterfactual_top_token": ""}  # fmt: skip
    edge_rows = [{"prompt_id": prompt_id, "layer": e.target.layer, "kind": e.kind,
                  "source": e.source.id, "target": e.target.id, "weight": e.weight,
                  "top_head": -1 if e.top_head is None else e.top_head,
                  "effect": effects.get(e.id, float("nan"))} for e in edges]  # fmt: skip
    diffs = []
    if counterfactual is not None:
        top = int(counterfactual.logits.argmax())
        prompt["counterfactual_top_token"] = counterfactual.trace.vocab[top]
        if graph is not None and counterfactual.graph is not None:
            diffs = diff_rows(diff_routes(graph, counterfactual.graph), prompt_id)
    return {"prompts": [prompt], "edges": edge_rows, "heads": _head_rows(found, prompt_id, carried),
            "neurons": _neuron_rows(found, prompt_id), "diffs": diffs}  # fmt: skip


def diff_rows(diff, prompt_id: int) -> list[dict]:
    """A graph diff's rows, on the prompt's positions (the counterfactual's edges before the
    prompt's first token are left out: they have no place on its positions)."""
    nan = float("nan")

    def row(edge, status: str, weight: float, weight_cf: float) -> dict:
        return {"prompt_id": prompt_id, "layer": edge.target.layer, "kind": edge.kind,
                "source": edge.source.id, "target": edge.target.id, "status": status,
                "weight": weight, "weight_counterfactual": weight_cf}  # fmt: skip

    rows = [row(e, "only prompt", e.weight, nan) for e in diff.only_a]
    rows += [row(e, "only counterfactual", nan, e.weight) for e in diff.only_b]
    rows += [row(a, "both", a.weight, b.weight) for a, b in diff.both]
    return rows


def empty_table(table: str):
    """An empty Parquet table of ``table``'s columns (a chunk with no rows of it)."""
    import pyarrow as pa

    ends = {"prompt_id": pa.int64(), "layer": pa.int64(), "kind": pa.string(),
            "source": pa.string(), "target": pa.string()}  # fmt: skip
    columns = {
        "edges": ends | {"weight": pa.float64(), "top_head": pa.int64(), "effect": pa.float64()},
        "diffs": ends
        | {
            "status": pa.string(),
            "weight": pa.float64(),
            "weight_counterfactual": pa.float64(),
        },  # fmt: skip
    }
    return pa.schema(columns.get(table, {"prompt_id": pa.int64()})).empty_table()
