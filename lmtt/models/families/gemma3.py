"""Gemma 3 (text): Gemma 2's sandwich norms with RMS norms on the queries and keys (per head,
multiplying by 1 + weight, before rotary), sliding windows on most layers with their own
rotary base."""

from types import MappingProxyType

from lmtt.models.families.base import QK_NORM_HOOKS, SANDWICH_HOOKS, SANDWICH_LIKE, Family

FAMILY = Family(
    "Gemma 3",
    ("gemma3_text",),
    norm_offset=1.0,
    **(SANDWICH_LIKE | {"hooks": MappingProxyType(SANDWICH_HOOKS | QK_NORM_HOOKS)}),
    qk_norm="head",
)
