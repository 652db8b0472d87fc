"""Forward passes with edits: the hooks lmtt.causal's interventions become, scoped to one call.

An edit names an activation by ``(kind, layer)``, as :mod:`lmtt.models.capture` does (plus the
edit points of ``families.base.EDIT_HOOKS``: one head's output ``z``, each block's write), and
replaces it by a function of itself and of activations seen earlier in the same pass. No
TransformerLens detail leaves this module; no hook outlives the call that adds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float

Key = tuple[str, int]
EditFn = Callable[[torch.Tensor, Mapping[Key, torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class HookEdit:
    """Replace activation ``kind`` of ``layer`` by ``apply(activation, seen)``; ``seen`` holds
    the activations named in ``reads`` from earlier in the same forward pass (as edited)."""

    kind: str
    layer: int | None  # None: a model-level hook (e.g. "unembed_in")
    apply: EditFn
    reads: tuple[Key, ...] = ()


def _hooks(model, edits: Sequence[HookEdit], keep: Sequence[Key], seen: dict) -> list:
    """One hook per activation touched: apply its edits in order, then remember it."""
    points: dict[Key, list[HookEdit]] = {}
    for e in edits:
        points.setdefault((e.kind, e.layer), []).append(e)
    remembered = {key for e in edits for key in e.reads} | set(keep)
    for key in remembered:
        points.setdefault(key, [])
    hooks = []
    for key, here in points.items():

        def fn(t, hook, key=key, here=here):
            for e in here:
                t = e.apply(t, seen)
            if key in remembered:
                seen[key] = t
            return t

        hooks.append((model.family.hook_name(*key), fn))
    return hooks


def run_edited(
    model,
    inputs: torch.Tensor,
    edits: Sequence[HookEdit] = (),
    start_layer: int = 0,
    keep: Sequence[Key] = (),
    positions: Sequence[int] | None = None,
) -> tuple[Float[torch.Tensor, "B T V"], dict[Key, torch.Tensor]]:
    """One forward pass with ``edits``: the logits [B, T, V] (float32, CPU) and the activations
    named in ``keep`` (as edited). ``inputs`` are tokens [B, T], or with ``start_layer`` the
    residual [B, T, D] entering that block (edits below it never fire). With ``positions``
    only those positions are unembedded: logits [B, len(positions), V] (what the
    unembedding reads is sliced; it acts per position)."""
    seen: dict[Key, torch.Tensor] = {}
    if positions is not None:
        index = torch.tensor(list(positions))
        edits = [*edits, HookEdit("unembed_in", None, lambda t, s: t[:, index.to(t.device)])]
    hooks = _hooks(model, edits, keep, seen)
    logits = model.run_with_hooks(inputs, hooks, start_layer=start_layer)
    if positions is not None and logits.shape[1] != len(positions):
        raise RuntimeError(f"the unembedding read {logits.shape[1]} positions, not the "
                           f"{len(positions)} asked for: its input hook did not fire")  # fmt: skip
    missing = sorted(k for k in keep if k not in seen)
    if missing:
        raise RuntimeError(f"hooks did not fire: {missing[:5]}")
    return logits.float().cpu(), {k: seen[k].float().cpu() for k in keep}


def gradients(
    model,
    tokens: torch.Tensor,
    points: Sequence[Key],
    metric: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[float, dict[Key, torch.Tensor], dict[Key, torch.Tensor]]:
    """One forward and one backward pass on tokens [T]: ``metric(logits [1, T, V])`` (a scalar),
    and the value and gradient of the metric with respect to each activation in ``points``
    (batch dimension dropped, float32, CPU)."""
    seen: dict[Key, torch.Tensor] = {}

    def remember(t, hook, key):
        # A copy, so the gradient follows only what an edit at this hook reaches (the bridge
        # passes some hooks' tensors on to other consumers too, e.g. resid_mid); without
        # weight gradients, the copy is a leaf.
        t = t.clone() if t.requires_grad else t.detach().requires_grad_(True)
        seen[key] = t
        return t

    hooks = [
        (model.family.hook_name(*key), lambda t, hook, key=key: remember(t, hook, key))
        for key in points
    ]
    logits = model.run_with_hooks(tokens[None], hooks, grad=True)
    with torch.enable_grad():
        value = metric(logits.float())
        keys = [k for k in points if k in seen]
        grads = torch.autograd.grad(value, [seen[k] for k in keys], allow_unused=True)
    missing = sorted(set(points) - set(keys))
    if missing:
        raise RuntimeError(f"hooks did not fire: {missing[:5]}")
    acts = {k: seen[k].detach()[0].float().cpu() for k in keys}
    out = {
        k: (torch.zeros_like(acts[k]) if g is None else g[0].float().cpu())
        for k, g in zip(keys, grads, strict=True)
    }
    return float(value.detach()), acts, out
