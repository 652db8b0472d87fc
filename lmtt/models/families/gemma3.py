"""Gemma 3 (text): Gemma 2's sandwich norms with RMS norms on the queries and keys, sliding
windows on most layers."""

from lmtt.models.families.base import SANDWICH_LIKE, Family

FAMILY = Family(
    "Gemma 3",
    ("gemma3_text",),
    norm_offset=1.0,
    **SANDWICH_LIKE,
    qk_refusal="its query scaling and sliding windows are not rebuilt from q and k yet",
)
