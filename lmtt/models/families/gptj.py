"""GPT-J: attention and MLP in parallel from one LayerNorm, rotary on part of each head."""

from lmtt.models.families.base import NO_ROTATED_QK, PARALLEL_HOOKS, Family

FAMILY = Family(
    "GPT-J",
    ("gptj",),
    layout="parallel",
    mlp_bias=True,
    positions="rotary",
    hooks=PARALLEL_HOOKS,
    qk_refusal=NO_ROTATED_QK,
    qk_rows=False,
)
