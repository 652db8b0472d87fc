"""Mixtral: the Mistral block with a mixture-of-experts MLP (top-2 of 8 experts per token;
each expert's hidden unit is a part weighted by its router weight)."""

from types import MappingProxyType

from lmtt.models.families.base import ROTARY_HOOKS, Family
from lmtt.models.moe import MOE_HOOKS

FAMILY = Family(
    "Mixtral",
    ("mixtral",),
    norm="rmsnorm",
    gated_mlp=True,
    moe=True,
    positions="rotary",
    hooks=MappingProxyType({k: v for k, v in ROTARY_HOOKS.items() if k != "mlp_post"} | MOE_HOOKS),
)
