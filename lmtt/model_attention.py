"""Model plumbing for the attention views: rotary embeddings and the masked-LM head.

Like ``lmtt.models`` this module knows the model internals (here the Hugging Face rotary
module); everything above it sees plain tensors.
"""

from __future__ import annotations

import torch

from lmtt.errors import LmttError
from lmtt.models import LoadedModel


class NoMlmHeadError(LmttError):
    """The model has no masked-LM head (a decoder, or an encoder saved without one)."""


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def rotate_qk(
    model: LoadedModel, q: torch.Tensor, k: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the model's rotary position embedding to q [T, H, dh] and k [T, Hkv, dh].

    TransformerLens' ``hook_q`` / ``hook_k`` hold the vectors before rotation; the scores the
    model uses are between the rotated ones. Models without rotary get q and k back unchanged.
    """
    hf = model.bridge.original_model
    rotary = getattr(getattr(hf, "model", None), "rotary_emb", None)
    if rotary is None:
        return q, k
    T = q.shape[0]
    positions = torch.arange(T, device=torch.device(model.device)).unsqueeze(0)
    with torch.inference_mode():
        probe = torch.zeros(1, T, q.shape[-1], device=torch.device(model.device))
        cos, sin = rotary(probe, positions)  # [1, T, dh]
    cos, sin = cos[0].float().cpu().unsqueeze(1), sin[0].float().cpu().unsqueeze(1)  # [T, 1, dh]
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def mlm_logits(model: LoadedModel, tokens: torch.Tensor) -> torch.Tensor:
    """Masked-LM logits [T, V] for tokens [T]; refuses models without a trained MLM head."""
    require_mlm_head(model)
    return model.forward(tokens.unsqueeze(0))[0].float().cpu()


def require_mlm_head(model: LoadedModel) -> None:
    """Raise :class:`NoMlmHeadError` unless the model was saved with its masked-LM head."""
    if not model.has_mlm_head:
        what = "a decoder" if not model.is_encoder else "an encoder saved without its MLM head"
        raise NoMlmHeadError(
            f"{model.name} has no masked-LM head ({what}), so it cannot fill in [MASK]. Use a "
            "model saved as *ForMaskedLM, e.g. bert-base-uncased."
        )


def mask_token_id(model: LoadedModel) -> int | None:
    return model.tokenizer.mask_token_id
