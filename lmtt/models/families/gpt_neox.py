"""GPT-NeoX and Pythia: attention and MLP in parallel, each from its own LayerNorm; partial
rotary; biases everywhere. (A config with use_parallel_residual false is sequential and is
refused until supported.)"""

from lmtt.models.families.base import PARALLEL_HOOKS, STANDARD_HOOKS, Family

FAMILY = Family(
    "GPT-NeoX",
    ("gpt_neox",),
    layout="parallel",
    attention_bias=True,
    mlp_bias=True,
    positions="rotary",
    hooks=PARALLEL_HOOKS | {"ln2_scale": STANDARD_HOOKS["ln2_scale"]},
    refused_configs=(
        ("use_parallel_residual", False, "this GPT-NeoX variant is sequential, not parallel"),
    ),
)
