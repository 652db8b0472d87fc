"""Masked-LM attention diagrams: one PNG per layer and head, an index.html grid, a ZIP."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

from lmtt.attention.masked_lm import check_masks, predict_from_trace, predict_masks
from lmtt.attention.views import capture_attention, view_layers
from lmtt.models.trace import Trace, prepare_tokens


def write_diagrams(trace: Trace, folder: str | Path) -> Path:
    """One PNG per layer and head (tokens on both axes) and index.html showing them as a grid."""
    from lmtt.viz.static import attention_diagram, figure_bytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for layer in view_layers(trace):
        cells = []
        for head in range(trace.n_heads):
            name = f"layer{layer:02d}_head{head:02d}.png"
            fig = attention_diagram(
                trace.pattern(layer)[head], list(trace.token_strs), f"Layer {layer}, head {head}"
            )
            (folder / name).write_bytes(figure_bytes(fig, "png"))
            cells.append(f'<td><a href="{name}"><img src="{name}" width="180"></a></td>')
        rows.append(f"<tr><th>L{layer}</th>{''.join(cells)}</tr>")
    header = "".join(f"<th>H{h}</th>" for h in range(trace.n_heads))
    (folder / "index.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>Attention diagrams</title>"
        f"<h1>{trace.model_name}</h1><p>{' '.join(trace.token_strs)}</p>"
        f"<table><tr><th></th>{header}</tr>{''.join(rows)}</table>",
        encoding="utf-8",
    )
    return folder


def diagrams_zip(trace: Trace) -> bytes:
    """The diagrams and their index.html (as :func:`write_diagrams` writes them) in a zip."""
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(write_diagrams(trace, tmp).iterdir()):
            zf.write(path, f"attention-diagrams/{path.name}")
    return buf.getvalue()


def mask_and_diagrams(model, text: str, k: int, folder: str | Path | None):
    """Predictions, and (with a folder) the diagrams, from a single forward pass."""
    if folder is None:
        return predict_masks(model, text, k)
    tokens = prepare_tokens(model, text)
    check_masks(model, tokens)  # before any file is written
    trace = capture_attention(model, tokens)
    write_diagrams(trace, folder)
    return predict_from_trace(model, trace, k)
