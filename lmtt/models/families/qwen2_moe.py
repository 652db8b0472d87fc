"""Qwen2-MoE: the Qwen2 block with routed experts and one shared expert whose write is scaled
by a sigmoid gate (its units come after the routed experts' in the MLP's parts)."""

from types import MappingProxyType

from lmtt.models.families.base import ROTARY_HOOKS, Family
from lmtt.models.moe import MOE_HOOKS

FAMILY = Family(
    "Qwen2-MoE",
    ("qwen2_moe",),
    norm="rmsnorm",
    attention_bias=True,
    gated_mlp=True,
    moe=True,
    positions="rotary",
    hooks=MappingProxyType({k: v for k, v in ROTARY_HOOKS.items() if k != "mlp_post"} | MOE_HOOKS),
)
