"""Queries and keys rotated after capture, for a family whose rotation the bridge never shows.

GPT-J's bridge attention hands the whole computation to Hugging Face's ``GPTJAttention``,
which rotates q and k inside its forward (interleaved pairs on the first ``rotary_dim``
dimensions): the bridge's hooks see them unrotated. For such a family
(``Family.rotate_captured_qk``) :func:`rotate_captured` applies the model's own rotation,
transformers' ``apply_rotary_pos_emb`` with the model's own sin/cos table, to the captured q
and k, at positions 0..T-1 (a single prompt, or a right-padded batch).
"""

from __future__ import annotations

import torch


def _rotate(hf_model, x: torch.Tensor) -> torch.Tensor:
    """x [B, T, H, d_head] rotated as GPT-J's attention rotates it."""
    from transformers.models.gptj.modeling_gptj import apply_rotary_pos_emb

    transformer = hf_model.transformer
    positions = torch.arange(x.shape[1], device=x.device)[None].expand(x.shape[0], -1)
    sin, cos = transformer.rotary_emb(x, position_ids=positions)
    rotary_dim = transformer.h[0].attn.rotary_dim
    if rotary_dim is None:
        return apply_rotary_pos_emb(x, sin, cos)
    turned = apply_rotary_pos_emb(x[..., :rotary_dim], sin, cos)
    return torch.cat([turned, x[..., rotary_dim:]], dim=-1)


def rotate_captured(model, acts: dict) -> None:
    """Rotate every captured ("q" | "k", layer) activation [B, T, H, d_head] in place."""
    if not model.family.rotate_captured_qk:
        return
    hf_model = model.bridge.original_model
    for key in [key for key in acts if key[0] in ("q", "k")]:
        with torch.inference_mode():
            acts[key] = _rotate(hf_model, acts[key])
