"""What the classic attention views read: one :class:`~lmtt.models.trace.Trace` per prompt
holding the attention patterns and the queries and keys (rotated for rotary models).

``capture_attention(model, text)`` works for decoders and encoders alike (encoders attend both
ways: ``trace.key_mask()`` has no causal mask). The head view, model view, q.k breakdown,
query-key map and masked-LM diagrams all take the trace it returns.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from lmtt.errors import AttentionViewError, check_index
from lmtt.models.trace import Trace, trace_activations

VIEW_CAPTURE = frozenset(("pattern", "q", "k"))


def capture_attention(
    model,
    text: str | torch.Tensor,
    hidden: bool = False,
    layers: Iterable[int] | None = None,
) -> Trace:
    """One forward pass keeping every layer's (or ``layers``') pattern, queries and keys (the
    pattern only, for a family whose queries and keys do not rebuild it: see require_qk);
    ``hidden`` also keeps the residual stream (``trace.residual_stream()``). The trace's
    logits are the model's output (for a masked LM, its predictions)."""
    L = model.dims.n_layers
    layers = range(L) if layers is None else [check_index("Layer", x, L) for x in layers]
    if not layers:
        raise AttentionViewError("No layer asked for: pass at least one layer.")
    kinds = {"pattern"} if model.family.qk_refusal else VIEW_CAPTURE
    wanted = {(kind, layer) for kind in kinds for layer in layers}
    if hidden:  # the whole residual stream, whatever the layers
        wanted |= {("resid_pre", layer) for layer in range(L)}
    return trace_activations(model, text, wanted)


def require_qk(trace: Trace, view: str) -> None:
    """Refuse a view built from queries and keys where they do not rebuild the pattern."""
    reason = trace.family.qk_refusal
    if reason:
        raise AttentionViewError(
            f"The {view} needs queries and keys that reproduce {trace.family.name}'s attention, "
            f"and {reason}. The head view and model view show its exact patterns."
        )


def view_layers(trace: Trace) -> tuple[int, ...]:
    """The layers whose patterns the trace holds (every layer unless it was captured with
    ``layers=``)."""
    return trace.layers("pattern")
