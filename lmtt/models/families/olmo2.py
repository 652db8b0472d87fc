"""OLMo 2: RMS norms on each block's write only (no norm on the block's input), and on the
queries and keys."""

from types import MappingProxyType

from lmtt.models.families.base import SANDWICH_HOOKS, Family

FAMILY = Family(
    "OLMo 2",
    ("olmo2",),
    norm="rmsnorm",
    norm_placement="sandwich",
    out_norms=("ln1_post", "ln2_post"),
    gated_mlp=True,
    positions="rotary",
    hooks=MappingProxyType(
        {k: v for k, v in SANDWICH_HOOKS.items() if k not in ("ln1_scale", "ln2_scale")}
    ),
)
