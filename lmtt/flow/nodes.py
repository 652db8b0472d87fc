"""The nodes and edges of the route graph (DESIGN.md §3), with their stable string ids."""

from __future__ import annotations

from dataclasses import dataclass

NODE_KINDS = ("embed", "resid", "attn_out", "mlp")
# attention | residual | mlp: the value path (what a block adds); key | query: a part that made
# an attention block's score (lmtt.flow.qk_routes), not a path the residual takes
EDGE_KINDS = ("attention", "residual", "mlp", "key", "query")
VALUE_KINDS = ("attention", "residual", "mlp")


@dataclass(frozen=True, order=True)
class Node:
    kind: str  # embed | attn_out | mlp | resid
    layer: int | None  # None for embed
    pos: int

    def to_json(self) -> dict:
        return {"kind": self.kind, "layer": self.layer, "pos": self.pos}

    @classmethod
    def from_json(cls, d: dict) -> Node:
        return cls(d["kind"], d["layer"], d["pos"])

    @property
    def id(self) -> str:
        """A stable string id, e.g. ``resid:3:5`` or ``embed::2`` (URLs, selections)."""
        return f"{self.kind}:{'' if self.layer is None else self.layer}:{self.pos}"

    @classmethod
    def from_id(cls, text: str) -> Node:
        kind, layer, pos = text.split(":")
        if kind not in NODE_KINDS:
            raise ValueError(f"unknown node kind in {text!r}")
        return cls(kind, int(layer) if layer else None, int(pos))

    def sort_key(self) -> tuple:
        layer = -1 if self.layer is None else self.layer
        return (layer, NODE_KINDS.index(self.kind) if self.kind != "resid" else 9, self.pos)


def embed(pos: int) -> Node:
    return Node("embed", None, pos)


def attn_out(layer: int, pos: int) -> Node:
    return Node("attn_out", layer, pos)


def mlp_block(layer: int, pos: int) -> Node:
    return Node("mlp", layer, pos)


def resid(layer: int, pos: int) -> Node:
    return Node("resid", layer, pos)


def layer_input(layer: int, pos: int) -> Node:
    """What block ``layer`` reads at ``pos``: the previous block's output or the embedding."""
    return resid(layer - 1, pos) if layer > 0 else embed(pos)


@dataclass(frozen=True)
class Edge:
    source: Node
    target: Node
    kind: str  # one of EDGE_KINDS
    weight: float
    heads: tuple[float, ...] | None = None  # per-head weights of an attention edge

    @property
    def id(self) -> str:
        """``source-id>target-id>kind``, e.g. ``resid:0:2>attn_out:1:5>attention``."""
        return f"{self.source.id}>{self.target.id}>{self.kind}"

    @staticmethod
    def parse_id(text: str) -> tuple[Node, Node, str]:
        """(source, target, kind) of an edge id (:attr:`id`); ValueError if malformed."""
        parts = text.split(">")
        if len(parts) != 3 or parts[2] not in EDGE_KINDS:
            raise ValueError(f"{text!r} is not an edge id (source>target>kind)")
        return Node.from_id(parts[0]), Node.from_id(parts[1]), parts[2]

    @property
    def top_head(self) -> int | None:
        """The head carrying most of an attention edge (None for other edges)."""
        if not self.heads:
            return None
        return max(range(len(self.heads)), key=self.heads.__getitem__)

    def to_json(self) -> dict:
        d = {
            "source": self.source.to_json(),
            "target": self.target.to_json(),
            "kind": self.kind,
            "weight": self.weight,
        }
        if self.heads is not None:
            d["heads"] = list(self.heads)
        return d

    @classmethod
    def from_json(cls, d: dict) -> Edge:
        heads = tuple(d["heads"]) if d.get("heads") is not None else None
        src, dst = Node.from_json(d["source"]), Node.from_json(d["target"])
        return cls(src, dst, d["kind"], float(d["weight"]), heads)
