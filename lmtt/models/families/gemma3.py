"""Gemma 3 (text): Gemma 2's sandwich norms with RMS norms on the queries and keys, sliding
windows on most layers."""

from lmtt.models.families.base import SANDWICH_HOOKS, Family

FAMILY = Family(
    "Gemma 3",
    ("gemma3_text",),
    norm="rmsnorm",
    norm_placement="sandwich",
    norm_offset=1.0,
    out_norms=("ln1_post", "ln2_post"),
    gated_mlp=True,
    positions="rotary",
    hooks=SANDWICH_HOOKS,
)
