"""Qwen3: the Llama block with RMS norms on the queries and keys (per head, before rotary)."""

from lmtt.models.families.base import LLAMA_LIKE, Family

FAMILY = Family("Qwen3", ("qwen3",), **LLAMA_LIKE)
