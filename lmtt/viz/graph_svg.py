"""The route graph as a standalone SVG document (no browser or kaleido needed)."""

from __future__ import annotations

from xml.sax.saxutils import escape

from lmtt.flow.graph import RouteGraph
from lmtt.viz.graph_figure import (
    DASHED,
    EDGE_COLOUR,
    KIND_STYLE,
    NEGATIVE,
    column_labels,
    edge_midpoint,
    node_xy,
    route_columns,
)


def route_svg(graph: RouteGraph, n_layers: int, title: str = "", cell: int = 70) -> str:
    """The graph as SVG; a long prompt draws only the positions on the routes (as the app)."""
    cols = route_columns(graph)
    width, height = 90 + cell * len(cols), 120 + cell * (n_layers + 1)
    top, left, unit_y = 50, 70, cell / 2

    def to_svg(x, y):
        return left + x * cell, top + (2 * n_layers - y) * unit_y

    def xy(node):
        return to_svg(*node_xy(node, cols))

    max_w = max((abs(e.weight) for e in graph.edges), default=1.0) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="20" font-size="14">{escape(title)}</text>',
    ]
    for layer in range(-1, n_layers):
        y = top + (2 * n_layers - (2 * layer + 2)) * unit_y
        label = "embed" if layer < 0 else f"L{layer}"
        parts.append(f'<text x="10" y="{y + 4:.1f}">{label}</text>')
        parts.append(
            f'<line x1="{left - 20}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
        )
    for e in graph.edges:
        (x0, y0), (x1, y1) = xy(e.source), xy(e.target)
        rel = abs(e.weight) / max_w
        rgb = NEGATIVE if e.weight < 0 else EDGE_COLOUR[e.kind]
        dash = 'stroke-dasharray="5,3" ' if e.kind in DASHED else ""
        # a quadratic curve through the edge's midpoint (bent aside for key and query edges)
        mx, my = to_svg(*edge_midpoint(e, cols))
        cx, cy = 2 * mx - (x0 + x1) / 2, 2 * my - (y0 + y1) / 2
        parts.append(
            f'<path d="M{x0:.1f},{y0:.1f} Q{cx:.1f},{cy:.1f} {x1:.1f},{y1:.1f}" fill="none" '
            f'stroke="rgb({rgb})" {dash}stroke-opacity="{0.25 + 0.7 * rel:.2f}" '
            f'stroke-width="{1 + 7 * rel:.1f}"><title>{e.kind} {e.weight:.3f}</title>'
            "</path>"
        )
    for n in graph.nodes:
        x, y = xy(n)
        colour = KIND_STYLE[n.kind][0]
        shape = (
            f'<rect x="{x - 6:.1f}" y="{y - 6:.1f}" width="12" height="12"'
            if n.kind in ("embed", "mlp")
            else f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6.5"'
        )
        parts.append(f'{shape} fill="{colour}" stroke="white"/>')
    for i, label in enumerate(column_labels(graph, cols)):
        x, y = left + i * cell, height - 40
        parts.append(
            f'<text x="{x:.1f}" y="{y}" text-anchor="end" '
            f'transform="rotate(-45 {x:.1f} {y})">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
