"""Llama: pre-RMSNorm, rotary positions, grouped-query attention, gated MLP, no biases."""

from lmtt.models.families.base import ROTARY_HOOKS, Family

FAMILY = Family(
    "Llama", ("llama",), norm="rmsnorm", gated_mlp=True, positions="rotary", hooks=ROTARY_HOOKS
)
