"""Mixtral: the Mistral block with a mixture-of-experts MLP (top-2 of 8 experts per token;
each expert's hidden unit is a part weighted by its router weight)."""

from lmtt.models.families.base import LLAMA_LIKE, MOE_LIKE, Family

FAMILY = Family("Mixtral", ("mixtral",), **(LLAMA_LIKE | MOE_LIKE))
