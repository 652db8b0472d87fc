"""Qwen2-MoE: the Qwen2 block with routed experts and one shared expert whose write is scaled
by a sigmoid gate (its units come after the routed experts' in the MLP's parts)."""

from lmtt.models.families.base import LLAMA_LIKE, MOE_LIKE, Family

FAMILY = Family("Qwen2-MoE", ("qwen2_moe",), attention_bias=True, **(LLAMA_LIKE | MOE_LIKE))
