"""OPT: pre-LayerNorm (the 350m size is post-norm and refused by its config), learned
positions, biases everywhere, ReLU MLP."""

from lmtt.models.families.base import Family

FAMILY = Family(
    "OPT",
    ("opt",),
    attention_bias=True,
    mlp_bias=True,
    refused_configs=(("do_layer_norm_before", False, "this OPT variant is post-norm"),),
)
