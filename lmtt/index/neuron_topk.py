"""Per-neuron top-k activations and summary statistics over a corpus (the neuron index core).

:class:`NeuronTopK` keeps, for every neuron of every layer, the k largest activations and the
global token index of each. Updates are vectorised over all neurons at once, and ``merge`` is
associative and deterministic (ties broken by the lower token index), so shards processed
independently and merged give exactly the single-run result. :class:`NeuronStats` keeps
count, sum, max and the number of active (> 0) tokens, which merge by addition / max.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lmtt.jit import njit, prange
from lmtt.memory import available_memory

FIXED_BITS = 24  # resolution of the summed activations; sums stay exact integers, so shards
# merged in any order give bit-identical means (overflow only past ~5e11 summed activation)


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

    # Bytes per kept example while indexing: a float32 value and an int64 index, times the
    # copies that merging and sorting make (measured peak: 5.6 to 6.4 tables at once).
    BYTES_PER_SLOT = 12 * 7

    @classmethod
    def check_fits(cls, n_layers: int, n_neurons: int, k: int) -> None:
        """Refuse a ``k`` whose tables cannot fit in the memory available, with the estimate."""
        need = n_layers * n_neurons * k * cls.BYTES_PER_SLOT
        have = available_memory()
        if have is not None and need > 0.8 * have:
            fits = int(0.8 * have / (n_layers * n_neurons * cls.BYTES_PER_SLOT))
            raise ValueError(
                f"--top-k {k} keeps {k:,} examples for each of {n_layers * n_neurons:,} neurons: "
                f"about {need / 2**30:.1f} GB of memory while indexing, more than the "
                f"{have / 2**30:.1f} GB available. Use a smaller --top-k (at most about "
                f"{fits:,} here)."
            )

    def update(self, acts: torch.Tensor, token_index: torch.Tensor) -> None:
        """Fold in activations acts [L, M, N] (token-major, as the model computes them) of
        the M tokens with global indices token_index [M], which must increase along M
        (padding rows: index -1 and activations -inf, which are never selected).

        Once every neuron holds k entries, only activations >= the neuron's k-th value can
        enter, and they are few: those candidates are merged alone. Otherwise (the first
        batches) a per-neuron ``topk`` runs, with a stable sort for rows where a tie at the
        k-th value would make ``topk``'s pick arbitrary. Either way the result is exactly the
        (value desc, index asc) top-k, whatever the batch size.
        """
        L, M, N = acts.shape
        if token_index.shape != (M,):
            raise ValueError(f"token_index must have shape ({M},), not {tuple(token_index.shape)}")
        acts, token_index = acts.float(), token_index.long()
        kth = self.values[..., -1]  # [L, N]
        if torch.isfinite(kth).all():
            # only neurons whose batch max reaches their k-th value can change
            tl, tn = (acts.amax(dim=1) >= kth).nonzero(as_tuple=True)  # sorted by (l, n)
            if len(tl) <= L * N // 4:
                rows = acts[tl, :, tn]  # [R, M]
                r, pos = (rows >= kth[tl, tn].unsqueeze(1)).nonzero(as_tuple=True)
                self._merge_rows(tl[r] * N + tn[r], rows[r, pos], token_index[pos])
                return
            layer, pos, neuron = (acts >= kth.unsqueeze(1)).nonzero(as_tuple=True)
            if len(layer) <= L * N * self.k // 4:
                row = layer * N + neuron
                order = torch.argsort(row, stable=True)  # by neuron, then token (few of them)
                layer, pos, neuron, row = layer[order], pos[order], neuron[order], row[order]
                self._merge_rows(row, acts[layer, pos, neuron], token_index[pos])
                return
        self._update_dense(acts, token_index)

    def _merge_rows(self, row: torch.Tensor, values: torch.Tensor, index: torch.Tensor) -> None:
        """Merge C candidates (row = layer * N + neuron [C], sorted; value [C]; token index
        [C], increasing within a row and above every index already kept)."""
        if len(row) == 0:
            return
        L, N, k = self.values.shape
        rows, counts = torch.unique_consecutive(row, return_counts=True)
        group = torch.repeat_interleave(torch.arange(len(rows)), counts)
        slot = torch.arange(len(row)) - (torch.cumsum(counts, 0) - counts)[group]
        width = int(counts.max())
        pad_v = torch.full((len(rows), width), float("-inf"))
        pad_i = torch.full((len(rows), width), -1, dtype=torch.long)
        pad_v[group, slot], pad_i[group, slot] = values, index
        flat_v, flat_i = self.values.reshape(L * N, k), self.index.reshape(L * N, k)
        # Kept entries come first and carry lower indices, so one stable sort by value
        # keeps ties in index order.
        values = torch.cat([flat_v[rows], pad_v], dim=-1)
        index = torch.cat([flat_i[rows], pad_i], dim=-1)
        order = torch.sort(values, dim=-1, descending=True, stable=True).indices[:, :k]
        flat_v[rows] = torch.gather(values, -1, order)
        flat_i[rows] = torch.gather(index, -1, order)
        self.values, self.index = flat_v.view(L, N, k), flat_i.view(L, N, k)

    def _update_dense(self, acts: torch.Tensor, token_index: torch.Tensor) -> None:
        L, M, N = acts.shape
        k = min(self.k, M)
        cand_v, cand_pos = torch.topk(acts, k, dim=1, sorted=False)  # [L, k, N]
        cand_v, cand_pos = cand_v.transpose(1, 2), cand_pos.transpose(1, 2)  # [L, N, k]
        kth = cand_v.amin(dim=-1)  # [L, N]
        tied_l, tied_n = ((acts >= kth.unsqueeze(1)).sum(dim=1) > k).nonzero(as_tuple=True)
        cand_v, cand_pos = cand_v.contiguous(), cand_pos.contiguous()
        if len(tied_l):  # ties at the boundary: take the lowest positions among equal values
            rows = acts[tied_l, :, tied_n]  # [R, M]
            v, p = _select_top(rows, torch.arange(M).expand_as(rows), k)
            cand_v[tied_l, tied_n], cand_pos[tied_l, tied_n] = v, p
        values = torch.cat([self.values, cand_v], dim=-1)
        index = torch.cat([self.index, token_index[cand_pos]], dim=-1)
        self.values, self.index = _select_top(values, index, self.k)

    def merge(self, other: NeuronTopK) -> NeuronTopK:
        """The top-k of the union of both (associative and commutative)."""
        if self.values.shape != other.values.shape:
            raise ValueError("cannot merge top-k tables of different shapes")
        values = torch.cat([self.values, other.values], dim=-1)
        index = torch.cat([self.index, other.index], dim=-1)
        return NeuronTopK(*_select_top(values, index, self.k))


@njit(parallel=True)
def _stats_kernel(acts, keep, sums, maxs, active):  # pragma: no cover - compiled
    """One pass over acts [L, M, N] (rows with keep[m] False skipped): per (layer, neuron)
    the float64 sum, the max and the count of values > 0, each accumulated in token order."""
    L, M, N = acts.shape
    for layer in prange(L):
        for m in range(M):
            if keep[m]:
                for n in range(N):
                    x = acts[layer, m, n]
                    sums[layer, n] += x
                    if x > maxs[layer, n]:
                        maxs[layer, n] = x
                    if x > 0:
                        active[layer, n] += 1


@dataclass
class NeuronStats:
    """Running statistics per neuron [L, N]: token count, sum, max and active (> 0) count."""

    count: int
    total: torch.Tensor  # int64 fixed-point sum (units of 2**-FIXED_BITS): exact in any order
    maximum: torch.Tensor
    active: torch.Tensor  # int64

    @classmethod
    def empty(cls, n_layers: int, n_neurons: int) -> NeuronStats:
        return cls(
            0,
            torch.zeros(n_layers, n_neurons, dtype=torch.long),
            torch.full((n_layers, n_neurons), float("-inf")),
            torch.zeros(n_layers, n_neurons, dtype=torch.long),
        )

    def update(self, acts: torch.Tensor, keep: torch.Tensor | None = None) -> None:
        """Fold in activations acts [L, M, N] of the tokens where keep [M] (default: all) is
        True; raises ValueError if any of them is NaN or infinite."""
        L, M, N = acts.shape
        keep_np = np.ones(M, dtype=np.bool_) if keep is None else keep.numpy()
        sums = np.zeros((L, N))
        maxs = np.full((L, N), -np.inf, dtype=np.float32)
        active = np.zeros((L, N), dtype=np.int64)
        _stats_kernel(acts.float().contiguous().numpy(), keep_np, sums, maxs, active)
        if not np.isfinite(sums).all():
            raise ValueError("non-finite activations")
        self.count += int(keep_np.sum())
        self.total += torch.from_numpy(np.round(sums * 2.0**FIXED_BITS).astype(np.int64))
        self.maximum = torch.maximum(self.maximum, torch.from_numpy(maxs))
        self.active += torch.from_numpy(active)

    def merge(self, other: NeuronStats) -> NeuronStats:
        return NeuronStats(
            self.count + other.count,
            self.total + other.total,
            torch.maximum(self.maximum, other.maximum),
            self.active + other.active,
        )

    @property
    def mean(self) -> torch.Tensor:
        return (self.total.double() / 2.0**FIXED_BITS / max(self.count, 1)).float()

    @property
    def fraction_active(self) -> torch.Tensor:
        return self.active.double().div(max(self.count, 1)).float()
