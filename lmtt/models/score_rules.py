"""How each layer turns its queries and keys into its pattern, read from the loaded modules.

A route trace keeps q and k, not the pattern, and computes pattern rows when asked
(:meth:`lmtt.models.trace.Trace.pattern_rows`). A :class:`ScoreRule` is everything besides
q . k that those rows need: the scale (GPT-2's optional inverse-layer scaling, Gemma's query
pre-attention scalar, GPT-Neo's unscaled products), Gemma 2's attention-logit soft-cap, and a
sliding window (Mistral, the sliding layers of Gemma 2 and 3, Qwen2 with windows switched on,
GPT-Neo's local layers) and BLOOM's ALiBi slopes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformer_lens.model_bridge.generalized_components.bloom_attention import (
    BloomAttentionBridge,
)
from transformer_lens.model_bridge.generalized_components.joint_qkv_attention import (
    JointQKVAttentionBridge,
)
from transformers.models.bloom.modeling_bloom import build_alibi_tensor

from lmtt.models.lean_attention import bridge_scale


@dataclass(frozen=True)
class ScoreRule:
    """One layer's pattern from q [H, Q, d_head] and k: scores = q . k * ``scale``, soft-capped
    to ``softcap * tanh(scores / softcap)`` where ``softcap`` is set, plus ``alibi[h] * j``
    at key position j where ALiBi slopes are set, masked causally for a decoder and, where
    ``window`` is set, to the keys fewer than ``window`` positions back, then softmax over the
    keys."""

    scale: float
    softcap: float | None = None
    window: int | None = None
    alibi: tuple[float, ...] | None = None  # per head: the slope of ALiBi's key-position bias


def _window(hf_attn, config, layer: int) -> int | None:
    if hasattr(hf_attn, "sliding_window"):  # set per layer (None on full-attention layers)
        return hf_attn.sliding_window or None
    if getattr(config, "use_sliding_window", True) is False:
        return None
    types = getattr(config, "layer_types", None)  # per layer, where the module does not say
    if types is not None and types[layer] != "sliding_attention":
        return None
    return getattr(config, "sliding_window", None) or None  # every layer (Mistral)


def _alibi_slopes(n_heads: int) -> tuple[float, ...]:
    """BLOOM's ALiBi slope per head, from transformers' own ALiBi tensor (at position 1)."""
    alibi = build_alibi_tensor(torch.ones(1, 2), n_heads, torch.float32)  # [H, 1, 2]
    return tuple(float(x) for x in alibi[:, 0, 1])


def _rule(attn, config, layer: int, d_head: int) -> ScoreRule:
    """One layer's rule, from its bridge module ``attn`` and the model's config."""
    hf_attn = attn.original_component
    if type(attn) is BloomAttentionBridge:  # ALiBi: the model's own slopes
        return ScoreRule(d_head**-0.5, alibi=_alibi_slopes(attn.config.n_heads))
    if hasattr(hf_attn, "attention_type"):  # GPT-Neo: unscaled, windowed "local" layers
        return ScoreRule(
            1.0, None, config.window_size if hf_attn.attention_type == "local" else None
        )
    if type(attn) is JointQKVAttentionBridge:
        scale = bridge_scale(attn)
    else:
        scale = float(getattr(hf_attn, "scaling", None) or d_head**-0.5)
    softcap = getattr(hf_attn, "attn_logit_softcapping", None)
    return ScoreRule(scale, softcap or None, _window(hf_attn, config, layer))


def score_rules(bridge, d_head: int) -> tuple[ScoreRule, ...]:
    """Each layer's :class:`ScoreRule`, from the bridge's attention modules and the config."""
    config = getattr(getattr(bridge, "original_model", None), "config", None)
    return tuple(
        _rule(block.attn, config, layer, d_head) for layer, block in enumerate(bridge.blocks)
    )
