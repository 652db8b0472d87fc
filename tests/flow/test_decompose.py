"""DESIGN.md §6 invariants 1 and 4 on GPT-2-style and Llama-style models, several prompts."""

import pytest
import torch

from lmtt.flow import decompose
from lmtt.flow.lens import lens_logits, residual_lens
from lmtt.models.trace import run_trace

TOL = 1e-4


def _random_prompts(model, n=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, model.dims.n_ctx, (n,), generator=gen)
    return [torch.randint(0, model.dims.d_vocab, (int(t),), generator=gen) for t in lengths]


@pytest.mark.parametrize("seed", [0, 1])
def test_attention_and_mlp_decompositions_conserve(tiny_model, seed):
    prompts = _random_prompts(tiny_model, seed=seed) + ["The cat sat on the mat."]
    for prompt in prompts:
        trace = run_trace(tiny_model, prompt)
        for layer in range(trace.n_layers):
            assert decompose.attention_conservation_error(trace, layer) < TOL
            assert decompose.mlp_conservation_error(trace, layer) < TOL


def test_per_source_parts_sum_to_head_outputs(tiny_model):
    trace = run_trace(tiny_model, "When Mary and John went to the store")
    for layer in range(trace.n_layers):
        parts = decompose.attention_parts(trace, layer)  # [T, T, H, d]
        heads = decompose.head_outputs(trace, layer)  # [T, H, d]
        torch.testing.assert_close(parts.sum(dim=1), heads, atol=1e-5, rtol=1e-4)
        # Causal: a query never receives anything from a later token.
        T = trace.n_tokens
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        assert parts[future].abs().max() == 0
        # Chunked query positions give the same parts.
        torch.testing.assert_close(
            decompose.attention_parts(trace, layer, [T - 1, 0]), parts[[T - 1, 0]]
        )


def test_neuron_parts_sum_to_mlp_output(tiny_model):
    trace = run_trace(tiny_model, "One, two, three")
    for layer in range(trace.n_layers):
        neurons = decompose.neuron_outputs(trace, layer)  # [T, n, d]
        whole = trace.resid_post(layer) - trace.resid_mid(layer)
        rebuilt = neurons.sum(dim=1) + trace.weights.b_out[layer]
        torch.testing.assert_close(rebuilt, whole, atol=1e-5, rtol=1e-4)


def test_logit_lens_of_last_residual_reproduces_logits(tiny_model):
    for prompt in _random_prompts(tiny_model, seed=3) + ["First Citizen: hear me"]:
        trace = run_trace(tiny_model, prompt)
        logits = lens_logits(trace, trace.resid_post(-1))
        torch.testing.assert_close(logits, trace.logits, atol=1e-4, rtol=1e-4)


def test_residual_lens_rows(tiny_model):
    trace = run_trace(tiny_model, "The capital of France is")
    rows = residual_lens(trace, position=-1, k=3)
    assert [label for label, _ in rows] == ["embed"] + [f"layer {i}" for i in range(3)]
    last = rows[-1][1].top[0]
    assert last.token_id == int(trace.logits[-1].argmax())
    assert abs(last.prob - float(trace.probabilities(-1).max())) < 1e-5


def test_one_edges_parts_equal_the_block_parts(tiny_model):
    from lmtt.models.trace import run_trace

    trace = run_trace(tiny_model, "When Mary and John went to the store, John gave")
    last = trace.n_tokens - 1
    for layer in range(trace.n_layers):
        want = decompose.attention_parts(trace, layer, [last])[0]  # [T, H, d]
        for source in (0, 3, last):
            torch.testing.assert_close(decompose.edge_parts(trace, layer, last, source),
                                       want[source], atol=1e-6, rtol=1e-5)  # fmt: skip
