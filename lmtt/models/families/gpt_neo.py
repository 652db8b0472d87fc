"""GPT-Neo: GPT-2's block with local (windowed) attention on every other layer, unscaled
query-key products, and no query, key or value biases."""

from lmtt.models.families.base import Family

FAMILY = Family(
    "GPT-Neo",
    ("gpt_neo",),
    mlp_bias=True,
)
