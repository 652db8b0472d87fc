"""StableLM: pre-LayerNorm, partial rotary, gated MLP (the parallel-residual variant follows
its config's use_parallel_residual and is refused until configured so)."""

from lmtt.models.families.base import ROTARY_HOOKS, Family

FAMILY = Family(
    "StableLM",
    ("stablelm",),
    gated_mlp=True,
    positions="rotary",
    hooks=ROTARY_HOOKS,
    refused_configs=(
        ("use_parallel_residual", True, "this StableLM variant runs attention and MLP in parallel"),
    ),
)
