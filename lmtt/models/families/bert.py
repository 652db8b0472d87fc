"""BERT encoders (and MiniLM): post-LayerNorm, attention both ways, learned positions.

Supported for the attention views, masked-LM prediction and context search; the routes
(information-flow graph) are not decomposed for post-norm encoders yet.
"""

from lmtt.models.families.base import ATTENTION, MASKED_LM, Family

FAMILY = Family(
    "BERT",
    ("bert",),
    role="encoder",
    norm_placement="post",
    attention_bias=True,
    mlp_bias=True,
    supports=frozenset((ATTENTION, MASKED_LM)),
)
