"""Mistral: the Llama block (pre-RMSNorm, rotary, grouped-query attention, gated MLP)."""

from lmtt.models.families.base import ROTARY_HOOKS, Family

FAMILY = Family(
    "Mistral", ("mistral",), norm="rmsnorm", gated_mlp=True, positions="rotary", hooks=ROTARY_HOOKS
)
