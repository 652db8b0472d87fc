"""The one capture routine: a forward pass with scoped hooks on the activations asked for.

Every record of a forward pass (a :class:`~lmtt.models.trace.Trace`, the neuron index's
batches, the context index's hidden states) is captured here. Activations are asked for by
``(kind, layer)``; the model's :class:`~lmtt.models.families.Family` names the hook of each
kind (for rotary families, ``q`` and ``k`` are the rotated vectors the scores are made of).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from lmtt.models.captured_rotary import rotate_captured
from lmtt.models.lean_attention import wants_pattern
from lmtt.models.moe import expert_scalars

Wanted = Iterable[tuple[str, int]]


def hook_names(model, wanted: Wanted) -> dict[str, tuple[str, int]]:
    """Hook name -> (kind, layer) for the activations ``wanted``."""
    return {model.family.hook_name(kind, layer): (kind, layer) for kind, layer in wanted}


_MOE_INPUTS = ("mlp_in", "expert_indices", "expert_weights")


def capture(
    model, tokens: torch.Tensor, wanted: Wanted, keep_logits: bool = True,
    logits_at: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, dict[tuple[str, int], torch.Tensor]]:  # fmt: skip
    """One forward pass on tokens [B, T]: the logits [B, T, V] (None unless ``keep_logits``;
    with ``logits_at`` [B, K], at those positions of each row only: [B, K, V]) and every
    wanted activation [B, ...] keyed by (kind, layer), float32 on the CPU.

    Hooks exist only inside the call; a hook that did not fire is an error, not a gap. For a
    mixture-of-experts model, "mlp_post" (and "router") are computed from the MLP's input and
    the router's choices (``lmtt.models.moe``).
    """
    wanted = set(wanted)
    derived = {(k, layer) for k, layer in wanted if k in ("mlp_post", "router")}
    if model.experts is None:
        derived = set()
    inputs = {(k, layer) for _, layer in derived for k in _MOE_INPUTS}
    names = hook_names(model, (wanted - derived) | inputs)
    lean = not wants_pattern(kind for kind, _ in wanted)  # no T x T tensors unless asked
    logits, cache = model.run_with_cache(tokens, list(names), lean=lean, logits_at=logits_at)
    missing = sorted(set(names) - set(cache))
    if missing:
        raise RuntimeError(f"hooks did not fire: {missing[:5]}")
    acts = {key: cache[name] for name, key in names.items()}
    rotate_captured(model, acts)  # GPT-J: q and k as its scores use them
    acts = {key: value.float().cpu() for key, value in acts.items()}
    for layer in sorted({layer for _, layer in derived}):
        x, i, w = (acts[(k, layer)] for k in _MOE_INPUTS)
        # the router's choices come flattened over batch and positions
        i, w = i.reshape(*x.shape[:-1], i.shape[-1]), w.reshape(*x.shape[:-1], w.shape[-1])
        acts[("mlp_post", layer)], acts[("router", layer)] = expert_scalars(
            model.experts, layer, x, i.long(), w
        )
    for key in inputs - wanted:
        acts.pop(key, None)
    for key in derived - wanted:
        acts.pop(key, None)
    return (logits.float().cpu() if keep_logits else None), acts


def every_layer(model, kinds: Iterable[str]) -> set[tuple[str, int]]:
    """(kind, layer) for each kind at every layer of the model."""
    return {(kind, layer) for kind in kinds for layer in range(model.dims.n_layers)}
