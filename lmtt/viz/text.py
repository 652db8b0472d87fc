"""Plain-text renderings shared by the CLI and the app."""

from __future__ import annotations


def token_label(token: str, max_len: int = 16) -> str:
    """A token as a short quoted string with whitespace and control characters made visible."""
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in token)
    shown = shown.replace(" ", "␣")
    if len(shown) > max_len:
        shown = shown[: max_len - 1] + "…"
    return shown


def percent(p: float) -> str:
    return f"{100 * p:.1f}%" if p >= 0.001 else f"{100 * p:.2g}%"


def node_label(node, tokens) -> str:
    """Short text for a graph node: kind, layer, position and token."""
    kind = {"embed": "embed", "attn_out": "attn", "mlp": "mlp", "resid": "resid"}[node.kind]
    layer = "" if node.layer is None else f" L{node.layer}"
    return f"{kind}{layer} @{node.pos} '{token_label(tokens[node.pos], 10)}'"
