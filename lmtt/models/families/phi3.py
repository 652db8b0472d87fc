"""Phi-3: the Llama block with fused query-key-value and gate-up projections."""

from lmtt.models.families.base import LLAMA_LIKE, Family

FAMILY = Family(
    "Phi-3",
    ("phi3",),
    **LLAMA_LIKE,
)
