"""OLMo 2: RMS norms on each block's write only (no norm on the block's input), and on the
queries and keys."""

from types import MappingProxyType

from lmtt.models.families.base import QK_NORM_HOOKS, SANDWICH_HOOKS, SANDWICH_LIKE, Family

_NO_INPUT_NORMS = {k: v for k, v in SANDWICH_HOOKS.items() if k not in ("ln1_scale", "ln2_scale")}
FAMILY = Family(
    "OLMo 2",
    ("olmo2",),
    **(SANDWICH_LIKE | {"hooks": MappingProxyType(_NO_INPUT_NORMS | QK_NORM_HOOKS)}),
    qk_norm="all",
)
