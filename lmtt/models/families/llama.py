"""Llama: pre-RMSNorm, rotary positions, grouped-query attention, gated MLP, no biases."""

from lmtt.models.families.base import LLAMA_LIKE, Family

FAMILY = Family("Llama", ("llama",), **LLAMA_LIKE)
