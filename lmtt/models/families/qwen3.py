"""Qwen3: the Llama block with RMS norms on the queries and keys (per head, before rotary)."""

from types import MappingProxyType

from lmtt.models.families.base import LLAMA_LIKE, QK_NORM_HOOKS, ROTARY_HOOKS, Family

FAMILY = Family(
    "Qwen3",
    ("qwen3",),
    **(LLAMA_LIKE | {"hooks": MappingProxyType(ROTARY_HOOKS | QK_NORM_HOOKS)}),
    qk_norm="head",
)
