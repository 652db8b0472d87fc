"""Qwen2: the Llama block with biases on the query, key and value projections."""

from lmtt.models.families.base import LLAMA_LIKE, Family

FAMILY = Family("Qwen2", ("qwen2",), attention_bias=True, **LLAMA_LIKE)
