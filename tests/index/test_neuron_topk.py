"""Neuron top-k and statistics: brute force, sharded + merged == single run."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmtt.index.neuron_topk import NeuronStats, NeuronTopK


def brute_force(acts: torch.Tensor, k: int):
    """Per neuron, sort all tokens by (value desc, index asc) and keep k. acts [L, N, M]."""
    L, N, M = acts.shape
    values = torch.full((L, N, k), float("-inf"))
    index = torch.full((L, N, k), -1, dtype=torch.long)
    for layer in range(L):
        for n in range(N):
            ranked = sorted(range(M), key=lambda t: (-float(acts[layer, n, t]), t))[:k]
            values[layer, n, : len(ranked)] = acts[layer, n, ranked]
            index[layer, n, : len(ranked)] = torch.tensor(ranked, dtype=torch.long)
    return values, index


@settings(max_examples=40, deadline=None)
@given(
    layers=st.integers(1, 3),
    neurons=st.integers(1, 6),
    tokens=st.integers(1, 40),
    k=st.integers(1, 8),
    n_shards=st.integers(1, 5),
    seed=st.integers(0, 10_000),
)
def test_sharded_topk_and_stats_equal_a_single_pass_and_brute_force(
    layers, neurons, tokens, k, n_shards, seed
):
    gen = torch.Generator().manual_seed(seed)
    # Rounded values: many ties, which must break the same way however the data is split.
    acts = torch.randint(-3, 4, (layers, neurons, tokens), generator=gen).float() / 2
    single, stats = NeuronTopK.empty(layers, neurons, k), NeuronStats.empty(layers, neurons)
    single.update(acts.transpose(1, 2), torch.arange(tokens))
    stats.update(acts.transpose(1, 2))
    ref_values, ref_index = brute_force(acts, k)
    assert torch.equal(single.values, ref_values) and torch.equal(single.index, ref_index)

    cuts = sorted(torch.randint(0, tokens + 1, (n_shards - 1,), generator=gen).tolist())
    bounds = [0, *cuts, tokens]
    shards, shard_stats = [], []
    for start, stop in zip(bounds, bounds[1:], strict=False):
        part, part_stats = NeuronTopK.empty(layers, neurons, k), NeuronStats.empty(layers, neurons)
        if stop > start:
            part.update(acts[..., start:stop].transpose(1, 2), torch.arange(start, stop))
            part_stats.update(acts[..., start:stop].transpose(1, 2))
        shards.append(part)
        shard_stats.append(part_stats)
    # Merge in a random order, on either side: merging is commutative and associative.
    order = torch.randperm(len(shards), generator=gen).tolist()
    merged, merged_stats = shards[order[0]], shard_stats[order[0]]
    for i, s in enumerate(order[1:]):
        if i % 2:
            merged, merged_stats = merged.merge(shards[s]), merged_stats.merge(shard_stats[s])
        else:
            merged, merged_stats = shards[s].merge(merged), shard_stats[s].merge(merged_stats)
    assert torch.equal(merged.values, single.values) and torch.equal(merged.index, single.index)
    assert merged_stats.count == tokens
    assert torch.equal(merged_stats.total, stats.total)  # fixed-point sums: exact in any order
    torch.testing.assert_close(merged_stats.mean, acts.mean(-1))
    assert torch.equal(merged_stats.maximum, acts.amax(-1))
    torch.testing.assert_close(merged_stats.fraction_active, (acts > 0).float().mean(-1))


@settings(max_examples=40, deadline=None)
@given(
    neurons=st.integers(1, 8),
    tokens=st.integers(1, 120),
    k=st.integers(1, 6),
    batch=st.integers(1, 30),
    levels=st.integers(2, 50),
    seed=st.integers(0, 10_000),
)
def test_streamed_updates_equal_brute_force_whatever_the_batch(
    neurons, tokens, k, batch, levels, seed
):
    """Batches after the first take the sparse candidate path; few levels force many ties."""
    gen = torch.Generator().manual_seed(seed)
    acts = torch.randint(0, levels, (2, neurons, tokens), generator=gen).float()
    top = NeuronTopK.empty(2, neurons, k)
    for start in range(0, tokens, batch):
        stop = min(start + batch, tokens)
        top.update(acts[..., start:stop].transpose(1, 2), torch.arange(start, stop))
    ref_values, ref_index = brute_force(acts, k)
    assert torch.equal(top.values, ref_values) and torch.equal(top.index, ref_index)


def test_stats_refuse_non_finite_activations():
    acts = torch.zeros(1, 3, 2)
    acts[0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        NeuronStats.empty(1, 2).update(acts)
