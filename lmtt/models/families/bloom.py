"""BLOOM: pre-LayerNorm, ALiBi (a linear bias on the attention scores instead of positions),
an embedding LayerNorm, biases everywhere."""

from lmtt.models.families.base import Family

FAMILY = Family(
    "BLOOM",
    ("bloom",),
    attention_bias=True,
    mlp_bias=True,
    positions="alibi",
)
