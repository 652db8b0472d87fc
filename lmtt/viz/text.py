"""Plain-text renderings shared by the CLI and the app."""

from __future__ import annotations

WHITESPACE = {" ": "␣", "\n": "⏎", "\t": "⇥"}  # one visible mark each, everywhere


def token_label(token: str, max_len: int = 16) -> str:
    """A token as a short string with whitespace made visible (␣ space, ⏎ newline, ⇥ tab)
    and other control characters escaped."""
    shown = "".join(WHITESPACE.get(c) or (c if c.isprintable() else
                    c.encode("unicode_escape").decode()) for c in token)  # fmt: skip
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


def part_label(label: str, tokens, pos: int, side: str, minus: int | None = None) -> str:
    """A score part in words: "L0 H3 at ' Mary' (query)", "embedding of ' John' (key)"; with
    ``minus`` the part at ``pos`` less the same part there ("at ' John' − ' Mary'")."""
    token = f"'{token_label(tokens[pos])}'"
    if minus is not None:
        token += f" − '{token_label(tokens[minus])}'"
    if label == "embedding":
        return f"embedding of {token} ({side})"
    if label == "bias":
        return f"{side} bias" if minus is None else f"{side} bias (at {token})"
    return f"{label} at {token} ({side})"
