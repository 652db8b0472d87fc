"""The check every trace passes: no block's output is NaN or infinite."""

from __future__ import annotations

import torch

from lmtt.errors import NonFiniteActivationError


def _finite(t: torch.Tensor) -> bool:
    """Whether every entry is finite. A NaN or an infinity makes the sum non-finite, in one
    fast pass without the boolean copy of the whole tensor ``isfinite`` makes; only when the
    sum is not finite (or overflowed) is every entry looked at."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def check_finite(acts: dict, logits: torch.Tensor | None, n_layers: int) -> None:
    """Raise at the first block whose output is NaN or infinite, naming it."""
    checks = [(("resid_pre", 0), "the embedding", 0)]
    for layer in range(n_layers):
        checks.append((("resid_mid", layer), f"the attention of layer {layer}", layer))
        after = ("resid_pre", layer + 1) if layer + 1 < n_layers else ("resid_post", layer)
        checks.append((after, f"the MLP of layer {layer}", layer))
    for key, where, layer in checks:
        t = acts.get(key)
        if t is not None and not _finite(t):
            raise NonFiniteActivationError(
                f"NaN or infinite activations first appear in {where}. Try float32 "
                "(--dtype float32), or check the weights for corruption.",
                layer=layer,
            )
    if logits is not None and not _finite(logits):
        raise NonFiniteActivationError(
            "The logits are NaN or infinite (final norm / unembedding).", layer=n_layers - 1
        )
