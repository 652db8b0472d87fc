"""Phi-3: the Llama block with fused query-key-value and gate-up projections."""

from lmtt.models.families.base import ROTARY_HOOKS, Family

FAMILY = Family(
    "Phi-3", ("phi3",), norm="rmsnorm", gated_mlp=True, positions="rotary", hooks=ROTARY_HOOKS
)
