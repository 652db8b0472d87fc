"""Qwen2: the Llama block with biases on the query, key and value projections."""

from lmtt.models.families.base import ROTARY_HOOKS, Family

FAMILY = Family(
    "Qwen2",
    ("qwen2",),
    norm="rmsnorm",
    attention_bias=True,
    gated_mlp=True,
    positions="rotary",
    hooks=ROTARY_HOOKS,
)
