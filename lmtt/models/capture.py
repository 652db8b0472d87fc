"""The one capture routine: a forward pass with scoped hooks on the activations asked for.

Every record of a forward pass (a :class:`~lmtt.models.trace.Trace`, the neuron index's
batches, the context index's hidden states) is captured here. Activations are asked for by
``(kind, layer)``; the model's :class:`~lmtt.models.families.Family` names the hook of each
kind (for rotary families, ``q`` and ``k`` are the rotated vectors the scores are made of).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

Wanted = Iterable[tuple[str, int]]


def hook_names(model, wanted: Wanted) -> dict[str, tuple[str, int]]:
    """Hook name -> (kind, layer) for the activations ``wanted``."""
    return {model.family.hook_name(kind, layer): (kind, layer) for kind, layer in wanted}


def capture(
    model, tokens: torch.Tensor, wanted: Wanted, keep_logits: bool = True
) -> tuple[torch.Tensor | None, dict[tuple[str, int], torch.Tensor]]:
    """One forward pass on tokens [B, T]: the logits [B, T, V] (None unless ``keep_logits``)
    and every wanted activation [B, ...] keyed by (kind, layer), float32 on the CPU.

    Hooks exist only inside the call; a hook that did not fire is an error, not a gap.
    """
    names = hook_names(model, wanted)
    logits, cache = model.run_with_cache(tokens, list(names))
    missing = sorted(set(names) - set(cache))
    if missing:
        raise RuntimeError(f"hooks did not fire: {missing[:5]}")
    acts = {key: cache[name].float().cpu() for name, key in names.items()}
    return (logits.float().cpu() if keep_logits else None), acts


def every_layer(model, kinds: Iterable[str]) -> set[tuple[str, int]]:
    """(kind, layer) for each kind at every layer of the model."""
    return {(kind, layer) for kind in kinds for layer in range(model.dims.n_layers)}
