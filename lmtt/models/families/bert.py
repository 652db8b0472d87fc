"""BERT encoders (and MiniLM): post-LayerNorm (each block's sum passes through its norm),
attention both ways, learned positions and an embedding LayerNorm.

Routes, attention views, masked-LM prediction and context search. The logit lens goes through
the masked-LM head, so it needs a model saved with one.
"""

from types import MappingProxyType

from lmtt.models.families.base import ATTENTION, MASKED_LM, ROUTES, STANDARD_HOOKS, Family

_HOOKS = {k: v for k, v in STANDARD_HOOKS.items() if k not in ("ln1_scale", "ln2_scale",
                                                                 "final_scale")}  # fmt: skip
FAMILY = Family(
    "BERT",
    ("bert",),
    role="encoder",
    norm_placement="post",
    out_norms=("ln1", "ln2"),
    attention_bias=True,
    mlp_bias=True,
    supports=frozenset((ROUTES, ATTENTION, MASKED_LM)),
    hooks=MappingProxyType(
        _HOOKS
        | {
            "resid_mid": "blocks.{layer}.ln1.hook_out",  # the attention block's normed sum
            "attn_out_scale": "blocks.{layer}.ln1.hook_scale",
            "mlp_out_scale": "blocks.{layer}.ln2.hook_scale",
            # interventions: the attention's write before the norm, and the sums the norms read
            "attn_write": "blocks.{layer}.attn.o.hook_out",
            "mid_sum": "blocks.{layer}.ln1.hook_in",
            "post_sum": "blocks.{layer}.ln2.hook_in",
        }
    ),
)
