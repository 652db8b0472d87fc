"""Gemma: the Llama block with RMS norms that multiply by (1 + weight), the embedding scaled by
sqrt(d_model), and a GeLU-gated MLP."""

from lmtt.models.families.base import LLAMA_LIKE, Family

FAMILY = Family("Gemma", ("gemma",), norm_offset=1.0, **LLAMA_LIKE)
