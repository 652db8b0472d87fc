"""Values for mean and patching interventions: the mean of each activation over a prompt set,
or a counterfactual prompt's activations aligned to the clean positions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from tqdm.auto import tqdm

from lmtt.causal.interventions import Reference
from lmtt.errors import InterventionError
from lmtt.models.capture import capture
from lmtt.models.intervene import Key
from lmtt.models.trace import prepare_tokens

EDIT_KINDS = ("resid_pre", "resid_mid", "resid_post", "z", "attn_write", "mlp_write", "mlp_post")


def reference_points(model, kinds: Iterable[str] = EDIT_KINDS) -> list[Key]:
    """Every (kind, layer) a mean or patch reference may be asked for."""
    kinds = [k for k in kinds if k != "resid_mid" or not model.family.parallel]
    if model.experts is not None:
        kinds = [k for k in kinds if k != "mlp_post"]
    return [(k, layer) for k in kinds for layer in range(model.dims.n_layers)]


def mean_reference(
    model, prompts: Sequence[str], points: Iterable[Key] | None = None, progress: bool = False
) -> Reference:
    """The mean of each activation over every position of every prompt (one pass each)."""
    if not prompts:
        raise InterventionError("Mean values need at least one prompt (or a corpus).")
    wanted = set(points or reference_points(model))
    sums: dict[Key, torch.Tensor] = {}
    count = 0
    for prompt in tqdm(prompts, desc="mean values", unit="prompt", disable=not progress):
        tokens = prepare_tokens(model, prompt)
        _, acts = capture(model, tokens[None], wanted, keep_logits=False)
        for key, value in acts.items():
            sums[key] = sums.get(key, 0) + value[0].sum(0)
        count += len(tokens)
    return Reference("mean", {key: s / count for key, s in sums.items()})


def patch_reference(
    model,
    counterfactual: str,
    n_clean: int,
    positions: Sequence[int] | None = None,
    points: Iterable[Key] | None = None,
) -> Reference:
    """The counterfactual prompt's activations; ``positions[i]`` is the counterfactual
    position patched into clean position ``i`` (default: the same position, which needs the
    same length)."""
    tokens = prepare_tokens(model, counterfactual)
    n = len(tokens)
    if positions is None and n != n_clean:
        raise InterventionError(
            f"The counterfactual prompt is {n} tokens and the clean one {n_clean}: make them the "
            "same length, or give the aligned positions (--align)."
        )
    if positions is not None:
        if len(positions) != n_clean:
            raise InterventionError(
                f"--align gives {len(positions)} positions; the clean prompt has {n_clean}."
            )
        bad = [p for p in positions if not 0 <= p < n]
        if bad:
            raise InterventionError(f"Aligned position {bad[0]} is outside 0..{n - 1}.")
    wanted = set(points or reference_points(model))
    _, acts = capture(model, tokens[None], wanted, keep_logits=False)
    values = {key: value[0] for key, value in acts.items()}
    return Reference("patch", values, None if positions is None else tuple(positions))
