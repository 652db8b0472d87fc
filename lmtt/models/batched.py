"""Several prompts in one forward pass: ``stack_traces(model, prompts) -> StackedTraces`` and
``run_traces(model, prompts) -> [Trace]``.

A decoder's position i never sees later positions, so prompts of different lengths padded on
the right (no mask needed) give each prompt exactly its own activations in the first positions
of its row, up to float rounding of the batched matrix products (tested against one trace per
prompt). The padded batch is kept as one *stacked* :class:`Trace`: its rows laid end to end
(position ``b * stride + p`` is prompt b's p, stride the padded length), each pattern row over
its own prompt's keys. The routes walk a stacked trace as one (``lmtt.flow.stacked``), and
:meth:`StackedTraces.prompt` cuts out an ordinary trace of each prompt. An encoder attends
both ways, so its prompts are traced one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

import torch
from jaxtyping import Float, Int

from lmtt.errors import check_index
from lmtt.models.capture import capture
from lmtt.models.finite import check_finite
from lmtt.models.trace import Trace, complete_wanted, prepare_tokens, record, route_kinds, run_trace


@dataclass(frozen=True, eq=False)
class StackedTraces:
    """The traces of ``len(lengths)`` prompts, stacked in ``trace`` (``trace.stride``
    positions each; prompt b's tokens are the first ``lengths[b]`` of its row); where the
    pass unembedded one position of each prompt only (``stack_traces(logits_at=...)``),
    ``trace.logits`` is None and ``logits[b]`` is prompt b's there."""

    trace: Trace
    lengths: tuple[int, ...]
    logits: Float[torch.Tensor, "B V"] | None = None

    @property
    def stride(self) -> int:
        return int(self.trace.stride)

    def positions(self, local: Sequence[int]) -> Int[torch.Tensor, " B"]:
        """The stacked positions of position ``local[b]`` of each prompt b."""
        base = torch.arange(len(self.lengths)) * self.stride
        return base + torch.as_tensor(local, dtype=torch.long)

    def prompt(self, b: int) -> Trace:
        """Prompt b's own trace (views into the stacked one; its pattern a copy)."""
        n, start = self.lengths[b], b * self.stride
        acts = {}
        for (kind, layer), value in self.trace.activations.items():
            if kind == "pattern":  # [H, stacked queries, stride keys]: an [H, T, T] copy
                acts[(kind, layer)] = value[:, start : start + n, :n].contiguous()
            else:
                acts[(kind, layer)] = value[start : start + n]
        return replace(
            self.trace, tokens=self.trace.tokens[start : start + n],
            token_strs=self.trace.token_strs[start : start + n],
            logits=None if self.trace.logits is None else self.trace.logits[start : start + n],
            activations=MappingProxyType(acts), stride=None,
        )  # fmt: skip


def _stacked(kind: str, value: torch.Tensor) -> torch.Tensor:
    """A batch's activation [B, ...] with its rows laid end to end."""
    if kind == "pattern":  # [B, H, S, S] -> [H, B * S, S]: each row over its prompt's keys
        return value.transpose(0, 1).reshape(value.shape[1], -1, value.shape[-1])
    return value.reshape(-1, *value.shape[2:])


def stack_traces(model, prompts: Sequence, capture_kinds=None, logits_at=None) -> StackedTraces:
    """One padded forward pass of a decoder over ``prompts`` (texts or ids), as a stacked
    trace of the ``capture_kinds`` (default: the routes'); with ``logits_at`` (a position of
    each prompt), only those positions are unembedded."""
    if model.family.is_encoder:
        raise ValueError("An encoder's prompts are traced one at a time: use run_traces.")
    kinds = frozenset(route_kinds(model) if capture_kinds is None else capture_kinds)
    unsupported = {k for k in kinds if k.endswith("norm_scale") and k.startswith(("q", "k"))}
    if unsupported:
        raise ValueError(f"A batch cannot stack {sorted(unsupported)}: trace one at a time")
    L = model.dims.n_layers
    wanted = complete_wanted(model, {(kind, layer) for kind in kinds for layer in range(L)})
    tokens = [prepare_tokens(model, p) for p in prompts]
    lengths = tuple(len(t) for t in tokens)
    if logits_at is not None:
        if len(logits_at) != len(lengths):
            raise ValueError(f"logits_at needs one position per prompt ({len(lengths)}).")
        logits_at = [check_index("Logit position", p, n)
                     for p, n in zip(logits_at, lengths, strict=True)]  # fmt: skip
    batch = torch.zeros(len(tokens), max(lengths), dtype=torch.long)  # right padding
    for row, t in enumerate(tokens):
        batch[row, : len(t)] = t
    at = None if logits_at is None else torch.as_tensor(logits_at, dtype=torch.long)[:, None]
    logits, acts = capture(model, batch, wanted, logits_at=at)
    flat = {key: _stacked(key[0], value) for key, value in acts.items()}
    # every padded position is checked for NaN too (a decoder's padding computes like a token)
    if at is not None:  # [B, 1, V]: one position of each prompt
        trace = record(model, batch.reshape(-1), None, flat)
        check_finite({}, logits, L)  # after the blocks, so a NaN is named where it appears
        return StackedTraces(replace(trace, stride=batch.shape[1]), lengths, logits[:, 0])
    trace = record(model, batch.reshape(-1), logits.reshape(-1, logits.shape[-1]), flat)
    return StackedTraces(replace(trace, stride=batch.shape[1]), lengths)


def run_traces(model, prompts: Sequence, capture_kinds=None) -> list[Trace]:
    """One trace per prompt (text or ids), from one padded forward pass for a decoder."""
    kinds = frozenset(route_kinds(model) if capture_kinds is None else capture_kinds)
    if model.family.is_encoder or len(prompts) == 1:
        return [run_trace(model, p, capture=kinds) for p in prompts]
    stacked = stack_traces(model, prompts, kinds)
    return [stacked.prompt(b) for b in range(len(prompts))]
