"""Mistral: the Llama block (pre-RMSNorm, rotary, grouped-query attention, gated MLP)."""

from lmtt.models.families.base import LLAMA_LIKE, Family

FAMILY = Family("Mistral", ("mistral",), **LLAMA_LIKE)
