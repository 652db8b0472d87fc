"""The reference attention patterns of TransformerLens's head detector, as plain tensors.

``transformer_lens.head_detector`` defines a head type by the pattern such a head would show on
given tokens (1 where it should attend, 0 elsewhere, lower-triangular) and scores a head by the
share of its attention that falls there (its "mul" measure). lmtt's head catalogue
(``lmtt.attention.heads``) uses those same reference patterns on its own traces; this module is
the only place that knows where they come from.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from transformer_lens import head_detector

KINDS = ("previous_token", "duplicate_token", "induction")


def reference_pattern(kind: str, tokens: Int[torch.Tensor, " T"]) -> Float[torch.Tensor, "T T"]:
    """Where a ``kind`` head attends on ``tokens`` (TransformerLens's detection pattern)."""
    make = {
        "previous_token": head_detector.get_previous_token_head_detection_pattern,
        "duplicate_token": head_detector.get_duplicate_token_head_detection_pattern,
        "induction": head_detector.get_induction_head_detection_pattern,
    }[kind]
    return make(tokens.reshape(1, -1).cpu()).float()


def detector_score(pattern: Float[torch.Tensor, "T T"], reference: torch.Tensor) -> float:
    """TransformerLens's own score of one head's pattern (for checking lmtt's vectorised one)."""
    return head_detector.compute_head_attention_similarity_score(
        pattern, reference, exclude_bos=False, exclude_current_token=False, error_measure="mul"
    )
