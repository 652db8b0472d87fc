"""OLMo: pre-LayerNorm without weights or biases (non-parametric), rotary, gated MLP."""

from lmtt.models.families.base import ROTARY_HOOKS, Family

FAMILY = Family("OLMo", ("olmo",), gated_mlp=True, positions="rotary", hooks=ROTARY_HOOKS)
