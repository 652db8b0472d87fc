"""Falcon (7B style): attention and MLP in parallel from one LayerNorm, rotary, multi-query
attention. The new decoder architecture (two LayerNorms) and ALiBi variants are refused until
tested."""

from lmtt.models.families.base import PARALLEL_HOOKS, Family

FAMILY = Family(
    "Falcon",
    ("falcon",),
    layout="parallel",
    positions="rotary",
    hooks=PARALLEL_HOOKS,
    refused_configs=(
        ("parallel_attn", False, "this Falcon variant is sequential, not parallel"),
        ("new_decoder_architecture", True, "Falcon's new decoder architecture is not tested"),
        ("alibi", True, "Falcon with ALiBi is not tested"),
    ),
)
