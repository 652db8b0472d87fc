"""How each layer turns its queries and keys into its pattern, read from the loaded modules.

A route trace keeps q and k, not the pattern, and computes pattern rows when asked
(:meth:`lmtt.models.trace.Trace.pattern_rows`). A :class:`ScoreRule` is everything besides
q . k that those rows need: the scale (GPT-2's optional inverse-layer scaling, Gemma's query
pre-attention scalar), Gemma 2's attention-logit soft-cap, and a sliding window (Mistral, the
sliding layers of Gemma 2 and 3, Qwen2 with windows switched on).
"""

from __future__ import annotations

from dataclasses import dataclass

from transformer_lens.model_bridge.generalized_components.joint_qkv_attention import (
    JointQKVAttentionBridge,
)

from lmtt.models.lean_attention import bridge_scale


@dataclass(frozen=True)
class ScoreRule:
    """One layer's pattern from q [H, Q, d_head] and k: scores = q . k * ``scale``, soft-capped
    to ``softcap * tanh(scores / softcap)`` where ``softcap`` is set, masked causally for a
    decoder and, where ``window`` is set, to the keys fewer than ``window`` positions back,
    then softmax over the keys."""

    scale: float
    softcap: float | None = None
    window: int | None = None


def _window(hf_attn, config) -> int | None:
    if hasattr(hf_attn, "sliding_window"):  # set per layer (None on full-attention layers)
        return hf_attn.sliding_window or None
    if getattr(config, "use_sliding_window", True) is False:
        return None
    return getattr(config, "sliding_window", None) or None  # every layer (Mistral)


def score_rules(bridge, d_head: int) -> tuple[ScoreRule, ...]:
    """Each layer's :class:`ScoreRule`, from the bridge's attention modules and the config."""
    config = getattr(getattr(bridge, "original_model", None), "config", None)
    rules = []
    for block in bridge.blocks:
        attn = block.attn
        hf_attn = attn.original_component
        if type(attn) is JointQKVAttentionBridge:
            scale = bridge_scale(attn)
        else:
            scale = float(getattr(hf_attn, "scaling", None) or d_head**-0.5)
        softcap = getattr(hf_attn, "attn_logit_softcapping", None)
        rules.append(ScoreRule(scale, softcap or None, _window(hf_attn, config)))
    return tuple(rules)
