"""Gemma: the Llama block with RMS norms that multiply by (1 + weight), the embedding scaled by
sqrt(d_model), and a GeLU-gated MLP."""

from lmtt.models.families.base import ROTARY_HOOKS, Family

FAMILY = Family(
    "Gemma",
    ("gemma",),
    norm="rmsnorm",
    norm_offset=1.0,
    gated_mlp=True,
    positions="rotary",
    hooks=ROTARY_HOOKS,
)
