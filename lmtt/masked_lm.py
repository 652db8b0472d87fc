"""Masked-LM prediction: top fillers for every [MASK] of a prompt, and per-head diagrams."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from lmtt.attention_trace import AttentionTrace, capture_attention_and_logits
from lmtt.errors import PromptError
from lmtt.model_attention import mask_token_id, mlm_logits, require_mlm_head
from lmtt.models import LoadedModel
from lmtt.trace import prepare_tokens


@dataclass(frozen=True)
class MaskPrediction:
    position: int
    fillers: list[tuple[str, float]]  # (token, probability), best first


def predict_masks(model: LoadedModel, text: str, k: int = 5) -> list[MaskPrediction]:
    """Top-k fillers for each mask token, all masks predicted in one pass."""
    tokens = prepare_tokens(model, text)
    _check_masks(model, tokens)
    return predict_from_logits(model, tokens, mlm_logits(model, tokens), k)


def _check_masks(model: LoadedModel, tokens: torch.Tensor) -> None:
    require_mlm_head(model)
    if not (tokens == mask_token_id(model)).any():
        mask = model.tokenizer.mask_token
        raise PromptError(f"The prompt has no {mask} token: write {mask} where a word is missing.")


def predict_from_logits(
    model: LoadedModel, tokens: torch.Tensor, logits: torch.Tensor, k: int = 5
) -> list[MaskPrediction]:
    """Top-k fillers of every mask position from a forward pass already made: tokens [T] and
    the model's masked-LM logits [T, V]."""
    _check_masks(model, tokens)
    out = []
    for pos in (tokens == mask_token_id(model)).nonzero().flatten().tolist():
        top = logits[pos].softmax(-1).topk(k)
        fillers = [(model.vocab[int(i)].strip(), float(p)) for p, i in zip(*top, strict=True)]
        out.append(MaskPrediction(pos, fillers))
    return out


def write_diagrams(at: AttentionTrace, folder: str | Path) -> Path:
    """One PNG per layer and head (tokens on both axes) and index.html showing them as a grid."""
    from lmtt.viz.static import attention_diagram, figure_bytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for layer in range(at.n_layers):
        cells = []
        for head in range(at.n_heads):
            name = f"layer{layer:02d}_head{head:02d}.png"
            fig = attention_diagram(
                at.patterns[layer, head], list(at.token_strs), f"Layer {layer}, head {head}"
            )
            (folder / name).write_bytes(figure_bytes(fig, "png"))
            cells.append(f'<td><a href="{name}"><img src="{name}" width="180"></a></td>')
        rows.append(f"<tr><th>L{layer}</th>{''.join(cells)}</tr>")
    header = "".join(f"<th>H{h}</th>" for h in range(at.n_heads))
    (folder / "index.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>Attention diagrams</title>"
        f"<h1>{at.model_name}</h1><p>{' '.join(at.token_strs)}</p>"
        f"<table><tr><th></th>{header}</tr>{''.join(rows)}</table>",
        encoding="utf-8",
    )
    return folder


def diagrams_zip(at: AttentionTrace) -> bytes:
    """The diagrams and their index.html (as :func:`write_diagrams` writes them) in a zip."""
    import io
    import tempfile
    import zipfile

    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(write_diagrams(at, tmp).iterdir()):
            zf.write(path, f"attention-diagrams/{path.name}")
    return buf.getvalue()


def mask_and_diagrams(model: LoadedModel, text: str, k: int, folder: str | Path | None):
    """Predictions, and (with a folder) the diagrams, from a single forward pass."""
    if folder is None:
        return predict_masks(model, text, k)
    tokens = prepare_tokens(model, text)
    _check_masks(model, tokens)  # before any file is written
    logits, at = capture_attention_and_logits(model, tokens)
    write_diagrams(at, folder)
    return predict_from_logits(model, tokens, logits, k)
