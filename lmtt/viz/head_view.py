"""Head view (BertViz): one layer's tokens in two columns, lines weighted by attention.

``head_view_svg`` draws a static SVG (the export); ``head_view_html`` wraps it with head
checkboxes and hover/click filtering for notebooks and the app.
"""

from __future__ import annotations

import html

from lmtt.models.trace import Trace

HEAD_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939",
)  # fmt: skip
ROW, WIDTH, MIN_WEIGHT = 20, 640, 0.01


def head_colour(head: int) -> str:
    return HEAD_COLOURS[head % len(HEAD_COLOURS)]


def head_view_svg(
    trace: Trace, layer: int, heads: list[int] | None = None, token: int | None = None
) -> str:
    """Static SVG; ``heads`` (default all) and ``token`` (a query position) filter the lines."""
    trace.check(layer, position=token)
    heads = list(range(trace.n_heads)) if heads is None else heads
    for h in heads:
        trace.check(layer, h)
    T = trace.n_tokens
    height = T * ROW + 30
    left_x, right_x = 190, WIDTH - 190
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="monospace" font-size="12" class="lmtt-head-view">',
        f'<text x="{WIDTH / 2}" y="14" text-anchor="middle">Layer {layer}</text>',
    ]
    pattern = trace.pattern(layer)  # [H, T, T]
    for h in heads:
        q_idx, k_idx = (pattern[h] > MIN_WEIGHT).nonzero(as_tuple=True)
        for q, k in zip(q_idx.tolist(), k_idx.tolist(), strict=True):
            if token is not None and q != token:
                continue
            w = float(pattern[h, q, k])
            y1, y2 = 30 + q * ROW - 4, 30 + k * ROW - 4
            parts.append(
                f'<line x1="{left_x + 5}" y1="{y1}" x2="{right_x - 5}" y2="{y2}" '
                f'stroke="{head_colour(h)}" stroke-width="{1 + 3 * w:.2f}" '
                f'stroke-opacity="{w:.3f}" data-h="{h}" data-q="{q}" data-k="{k}"/>'
            )
    for i, s in enumerate(trace.token_strs):
        label = html.escape(s.replace("\n", "⏎"))
        y = 30 + i * ROW
        parts.append(
            f'<text x="{left_x}" y="{y}" text-anchor="end" class="tq" data-i="{i}">{label}</text>'
        )
        parts.append(f'<text x="{right_x}" y="{y}" class="tk" data-i="{i}">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


_SCRIPT = """
<script>
(function() {
  const root = document.currentScript.parentElement;
  const lines = root.querySelectorAll('line');
  let sticky = root.dataset.sticky === undefined ? null : root.dataset.sticky;
  function show(side, i) {
    const heads = new Set([...root.querySelectorAll('input:checked')].map(c => c.value));
    lines.forEach(l => {
      const on = heads.has(l.dataset.h) && (i === null || l.dataset[side] === i);
      l.style.display = on ? '' : 'none';
    });
  }
  root.querySelectorAll('input').forEach(
    c => c.addEventListener('change', () => show('q', sticky)));
  root.querySelectorAll('text.tq, text.tk').forEach(t => {
    const side = t.classList.contains('tq') ? 'q' : 'k';
    t.style.cursor = 'pointer';
    t.addEventListener('mouseenter', () => show(side, t.dataset.i));
    t.addEventListener('mouseleave', () => show('q', sticky));
    t.addEventListener('click', () => { sticky = sticky === t.dataset.i ? null : t.dataset.i;
                                        show('q', sticky); });
  });
  show('q', sticky);  // the heads ticked and the query picked when drawn
})();
</script>
"""


def head_view_html(
    trace: Trace, layer: int, heads: list[int] | None = None, token: int | None = None
) -> str:
    """Interactive head view: a checkbox per head (``heads`` ticked, default all); hover a
    token to see only its lines, click it to keep that filter (``token``: a query position
    kept from the start)."""
    trace.check(layer, position=token)
    ticked = set(range(trace.n_heads)) if heads is None else set(heads)
    boxes = "".join(
        f'<label style="color:{head_colour(h)};margin-right:6px">'
        f'<input type="checkbox" value="{h}"{" checked" if h in ticked else ""}>h{h}</label>'
        for h in range(trace.n_heads)
    )
    sticky = "" if token is None else f' data-sticky="{int(token)}"'
    return (
        f'<div class="lmtt-head-view-root"{sticky}><div style="font:12px sans-serif">{boxes}'
        f"</div>{head_view_svg(trace, layer)}{_SCRIPT}</div>"
    )
