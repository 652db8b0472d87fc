"""Qwen3: the Llama block with RMS norms on the queries and keys (per head, before rotary)."""

from lmtt.models.families.base import ROTARY_HOOKS, Family

FAMILY = Family(
    "Qwen3", ("qwen3",), norm="rmsnorm", gated_mlp=True, positions="rotary", hooks=ROTARY_HOOKS
)
