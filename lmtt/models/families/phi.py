"""Phi-1, Phi-1.5 and Phi-2: attention and MLP in parallel from one LayerNorm, partial
rotary, biases everywhere."""

from lmtt.models.families.base import PARALLEL_HOOKS, Family

FAMILY = Family(
    "Phi",
    ("phi",),
    layout="parallel",
    attention_bias=True,
    mlp_bias=True,
    positions="rotary",
    hooks=PARALLEL_HOOKS,
)
