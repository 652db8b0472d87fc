"""Per-neuron top-k activations and summary statistics over a corpus (the neuron index core).

:class:`NeuronTopK` keeps, for every neuron of every layer, the k largest activations and the
global token index of each. Updates are vectorised over all neurons at once, and ``merge`` is
associative and deterministic (ties broken by the lower token index), so shards processed
independently and merged give exactly the single-run result. :class:`NeuronStats` keeps
count, sum, max and the number of active (> 0) tokens, which merge by addition / max.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _select_top(values: torch.Tensor, index: torch.Tensor, k: int):
    """The k entries of the last dim with the largest value, ties to the lower index; entries
    come out ordered (value desc, index asc). values/index [..., M] -> [..., k]."""
    by_index = torch.sort(index, dim=-1, stable=True)
    values = torch.gather(values, -1, by_index.indices)
    index = by_index.values
    order = torch.sort(values, dim=-1, descending=True, stable=True).indices[..., :k]
    return torch.gather(values, -1, order), torch.gather(index, -1, order)


@dataclass
class NeuronTopK:
    """Top-k activations per neuron: values/index [L, N, k]; empty slots hold -inf / -1."""

    values: torch.Tensor
    index: torch.Tensor

    @classmethod
    def empty(cls, n_layers: int, n_neurons: int, k: int) -> NeuronTopK:
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        return cls(
            torch.full((n_layers, n_neurons, k), float("-inf")),
            torch.full((n_layers, n_neurons, k), -1, dtype=torch.long),
        )

    @property
    def k(self) -> int:
        return int(self.values.shape[-1])

    def update(self, acts: torch.Tensor, token_index: torch.Tensor) -> None:
        """Fold in activations acts [L, N, M] of the tokens with global indices [M]."""
        L, N, M = acts.shape
        if token_index.shape != (M,):
            raise ValueError(f"token_index must have shape ({M},), not {tuple(token_index.shape)}")
        values = torch.cat([self.values, acts.float()], dim=-1)
        index = torch.cat([self.index, token_index.long().expand(L, N, M)], dim=-1)
        self.values, self.index = _select_top(values, index, self.k)

    def merge(self, other: NeuronTopK) -> NeuronTopK:
        """The top-k of the union of both (associative and commutative)."""
        if self.values.shape != other.values.shape:
            raise ValueError("cannot merge top-k tables of different shapes")
        values = torch.cat([self.values, other.values], dim=-1)
        index = torch.cat([self.index, other.index], dim=-1)
        return NeuronTopK(*_select_top(values, index, self.k))


@dataclass
class NeuronStats:
    """Running statistics per neuron [L, N]: token count, sum, max and active (> 0) count."""

    count: int
    total: torch.Tensor  # float64 sum
    maximum: torch.Tensor
    active: torch.Tensor  # int64

    @classmethod
    def empty(cls, n_layers: int, n_neurons: int) -> NeuronStats:
        return cls(
            0,
            torch.zeros(n_layers, n_neurons, dtype=torch.float64),
            torch.full((n_layers, n_neurons), float("-inf")),
            torch.zeros(n_layers, n_neurons, dtype=torch.long),
        )

    def update(self, acts: torch.Tensor) -> None:
        """Fold in activations acts [L, N, M]."""
        self.count += int(acts.shape[-1])
        self.total += acts.double().sum(dim=-1)
        self.maximum = torch.maximum(self.maximum, acts.float().amax(dim=-1))
        self.active += (acts > 0).sum(dim=-1)

    def merge(self, other: NeuronStats) -> NeuronStats:
        return NeuronStats(
            self.count + other.count,
            self.total + other.total,
            torch.maximum(self.maximum, other.maximum),
            self.active + other.active,
        )

    @property
    def mean(self) -> torch.Tensor:
        return (self.total / max(self.count, 1)).float()

    @property
    def fraction_active(self) -> torch.Tensor:
        return self.active.double().div(max(self.count, 1)).float()
