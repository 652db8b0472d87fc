"""Several prompts in one forward pass: ``run_traces(model, prompts) -> [Trace]``.

A decoder's position i never sees later positions, so prompts of different lengths padded on
the right (no mask needed) give each prompt exactly its own activations in the first positions
of its row, up to float rounding of the batched matrix products (tested against one trace per
prompt). Each row is cut back to its prompt and recorded as an ordinary :class:`Trace`. An
encoder attends both ways, so its prompts are traced one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lmtt.models.capture import capture
from lmtt.models.trace import Trace, complete_wanted, prepare_tokens, record, route_kinds, run_trace

TWO_POSITION_KINDS = frozenset(("pattern",))  # [H, T, T]: both position axes are cut


def _cut(kind: str, value: torch.Tensor, n: int) -> torch.Tensor:
    """One row's activation [..] cut to its first ``n`` positions."""
    if kind in TWO_POSITION_KINDS:
        return value[:, :n, :n].contiguous()
    return value[:n].contiguous()


def run_traces(model, prompts: Sequence, capture_kinds=None) -> list[Trace]:
    """One trace per prompt (text or ids), from one padded forward pass for a decoder."""
    kinds = frozenset(route_kinds(model) if capture_kinds is None else capture_kinds)
    if model.family.is_encoder or len(prompts) == 1:
        return [run_trace(model, p, capture=kinds) for p in prompts]
    unsupported = {k for k in kinds if k.endswith("norm_scale") and k.startswith(("q", "k"))}
    if unsupported:
        raise ValueError(f"run_traces cannot cut {sorted(unsupported)}: trace one at a time")
    L = model.dims.n_layers
    wanted = complete_wanted(model, {(kind, layer) for kind in kinds for layer in range(L)})
    tokens = [prepare_tokens(model, p) for p in prompts]
    lengths = [len(t) for t in tokens]
    batch = torch.zeros(len(tokens), max(lengths), dtype=torch.long)  # right padding
    for row, t in enumerate(tokens):
        batch[row, : len(t)] = t
    logits, acts = capture(model, batch, wanted)
    return [
        record(
            model,
            t,
            logits[row, :n].contiguous(),
            {key: _cut(key[0], value[row], n) for key, value in acts.items()},
        )  # fmt: skip
        for row, (t, n) in enumerate(zip(tokens, lengths, strict=True))
    ]
