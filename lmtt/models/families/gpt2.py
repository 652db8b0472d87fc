"""GPT-2: pre-LayerNorm, learned positions, biases everywhere, plain GELU MLP."""

from lmtt.models.families.base import Family

FAMILY = Family("GPT-2", ("gpt2",), attention_bias=True, mlp_bias=True)
