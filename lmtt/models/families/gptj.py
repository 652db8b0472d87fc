"""GPT-J: attention and MLP in parallel from one LayerNorm, rotary on part of each head."""

from types import MappingProxyType

from lmtt.models.families.base import PARALLEL_HOOKS, STANDARD_HOOKS, Family

# the bridge's q and k before the rotation, which lmtt applies (lmtt.models.captured_rotary)
_HOOKS = PARALLEL_HOOKS | {"q": STANDARD_HOOKS["q"], "k": STANDARD_HOOKS["k"]}

FAMILY = Family(
    "GPT-J",
    ("gptj",),
    layout="parallel",
    mlp_bias=True,
    positions="rotary",
    hooks=MappingProxyType(_HOOKS),
    rotate_captured_qk=True,
)
