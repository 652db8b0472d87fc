"""Gemma 2: sandwich norms (RMS norms on each block's input and on its write, multiplying by
1 + weight), attention-logit and final-logit soft-capping, sliding-window layers."""

from lmtt.models.families.base import SANDWICH_LIKE, Family

FAMILY = Family(
    "Gemma 2",
    ("gemma2",),
    norm_offset=1.0,
    **SANDWICH_LIKE,
)
