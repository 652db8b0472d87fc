"""Batched traces (lmtt.models.batched): prompts of different lengths in one padded forward
pass give each prompt its own trace (equal to tracing it alone)."""

import pytest
import torch

from lmtt.flow.graph import routes
from lmtt.models.batched import run_traces
from lmtt.models.trace import run_trace

PROMPTS = ["When Mary and John went to the store, John gave a drink to", "The cat sat",
           "One, two, three, four, five"]  # fmt: skip


def test_batched_traces_equal_single_ones(tiny_model):
    batched = run_traces(tiny_model, PROMPTS)
    for prompt, trace in zip(PROMPTS, batched, strict=True):
        alone = run_trace(tiny_model, prompt)
        assert torch.equal(trace.tokens, alone.tokens)
        assert set(trace.activations) == set(alone.activations)
        torch.testing.assert_close(trace.logits, alone.logits, atol=1e-4, rtol=1e-4)
        for key, value in alone.activations.items():
            torch.testing.assert_close(trace.activations[key], value, atol=1e-4, rtol=1e-4,
                                       msg=str(key))  # fmt: skip
        assert routes(trace, threshold=0.1).edges  # an ordinary trace


def test_patterns_are_cut_on_both_axes(gpt2_model):
    short, long_ = run_traces(gpt2_model, PROMPTS[1:], capture_kinds={"pattern"})
    T = short.n_tokens
    assert short.pattern(0).shape == (gpt2_model.dims.n_heads, T, T)
    torch.testing.assert_close(short.pattern(0).sum(-1), torch.ones(gpt2_model.dims.n_heads, T))
    assert long_.n_tokens > T


def test_query_key_norm_scales_are_refused(gpt2_model):
    with pytest.raises(ValueError, match="one at a time"):
        run_traces(gpt2_model, PROMPTS, capture_kinds={"q_norm_scale"})


def test_a_stack_unembeds_only_the_positions_asked_for(gpt2_model, monkeypatch):
    """With logits_at, transformers' own logits_to_keep unembeds one position of each prompt
    (or, for a model without it, the logits are cut after the pass): equal to the full
    logits there either way; the stacked trace and its prompts keep no logits."""
    from lmtt.errors import NotCapturedError, OutOfRangeError
    from lmtt.models.batched import stack_traces

    assert gpt2_model._unembeds_some  # transformers' own path, then the fallback below
    full = stack_traces(gpt2_model, PROMPTS)
    at = [n - 1 for n in full.lengths[:-1]] + [2]
    want = torch.stack([full.prompt(b).logits[p] for b, p in enumerate(at)])
    some = stack_traces(gpt2_model, PROMPTS, logits_at=at)
    torch.testing.assert_close(some.logits, want, atol=1e-5, rtol=1e-5)
    assert some.trace.logits is None and some.prompt(0).logits is None
    with pytest.raises(NotCapturedError, match="no logits"):
        some.prompt(0).probabilities()
    monkeypatch.setitem(gpt2_model.__dict__, "_unembeds_some", False)
    cut = stack_traces(gpt2_model, PROMPTS, logits_at=at)
    torch.testing.assert_close(cut.logits, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(OutOfRangeError):
        stack_traces(gpt2_model, PROMPTS, logits_at=[0, 0, 99])
    with pytest.raises(ValueError, match="one position per prompt"):
        stack_traces(gpt2_model, PROMPTS, logits_at=[0])


def test_stacked_routes_past_every_route_and_bad_targets(gpt2_model):
    """Past every route's weight a prompt's graph is None and its blocks are still there (as
    routes_and_blocks gives them); a wrong number of targets, or one past a prompt's last
    token, is refused."""
    from lmtt.errors import OutOfRangeError
    from lmtt.flow.graph import routes_and_blocks
    from lmtt.flow.stacked import stacked_routes
    from lmtt.models.batched import stack_traces

    stacked = stack_traces(gpt2_model, PROMPTS)
    targets = [n - 1 for n in stacked.lengths]
    found = stacked_routes(stacked, targets, 0.999)
    assert None in found.graphs
    for b, prompt in enumerate(PROMPTS):
        graph, blocks = routes_and_blocks(run_trace(gpt2_model, prompt), targets[b], 0.999)
        assert (graph is None) == (found.graphs[b] is None)
        for layer, block in enumerate(blocks):
            torch.testing.assert_close(found.blocks[layer].per_head[b], block.per_head[0],
                                       atol=1e-5, rtol=1e-4)  # fmt: skip
    with pytest.raises(ValueError, match="3 targets"):
        stacked_routes(stacked, [0, 1])
    with pytest.raises(OutOfRangeError):
        stacked_routes(stacked, [0, 1, stacked.lengths[2]])  # one past its last token


def test_a_nan_is_named_where_it_first_appears(gpt2_model, monkeypatch):
    from lmtt.errors import NonFiniteActivationError
    from lmtt.models import batched

    def poisoned(*args, **kwargs):
        logits, acts = capture(*args, **kwargs)
        acts[("resid_mid", 0)] = acts[("resid_mid", 0)].clone()
        acts[("resid_mid", 0)][0, 1] = float("nan")
        return logits * float("nan"), acts

    capture = batched.capture
    monkeypatch.setattr(batched, "capture", poisoned)
    with pytest.raises(NonFiniteActivationError, match="attention of layer 0"):
        batched.stack_traces(gpt2_model, PROMPTS, logits_at=[0, 0, 0])
