import dataclasses
import threading

import pytest
import torch
from safetensors.torch import load_file, save_file

from lmtt.errors import NonFiniteActivationError, NotCapturedError, PromptError
from lmtt.models import load_model
from lmtt.models.trace import run_trace
from lmtt.testing import make_tiny_model


def test_trace_shapes(tiny_model):
    trace = run_trace(tiny_model, "The cat sat on the mat.")
    d = tiny_model.dims
    T = trace.n_tokens
    assert trace.tokens.shape == (T,) and len(trace.token_strs) == T
    assert trace.logits.shape == (T, d.d_vocab)
    for layer in range(d.n_layers):
        assert trace.resid_pre(layer).shape == (T, d.d_model)
        assert trace.resid_mid(layer).shape == (T, d.d_model)
        assert trace.resid_post(layer).shape == (T, d.d_model)
        assert trace.pattern(layer).shape == (d.n_heads, T, T)
        assert trace.values(layer).shape == (T, d.n_kv_heads, d.d_head)
        assert trace.mlp_post(layer).shape == (T, d.d_mlp)
        assert trace.ln1_scale(layer).shape == (T, 1)
        assert trace.ln2_scale(layer).shape == (T, 1)
        sums = trace.pattern(layer).sum(-1)
        torch.testing.assert_close(sums, torch.ones_like(sums))
        assert torch.triu(trace.pattern(layer), diagonal=1).abs().max() == 0  # causal
    assert trace.final_scale().shape == (T, 1)
    assert torch.equal(trace.resid_post(0), trace.resid_pre(1))


def test_trace_is_immutable(gpt2_model):
    trace = run_trace(gpt2_model, "hello")
    with pytest.raises(dataclasses.FrozenInstanceError):
        trace.logits = None
    with pytest.raises(TypeError):
        trace.activations[("resid_pre", 0)] = None


def test_names_filter_captures_only_what_is_asked(gpt2_model):
    trace = run_trace(gpt2_model, "hello", capture={"resid_pre", "resid_mid"})
    kinds = {kind for kind, _ in trace.activations}
    assert kinds == {"resid_pre", "resid_mid", "resid_post", "final_scale"}
    with pytest.raises(NotCapturedError, match="not captured"):
        trace.pattern(0)


def test_no_hooks_survive_and_model_is_not_mutated(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.bridge.state_dict().items()}
    run_trace(tiny_model, "The cat")
    assert tiny_model.active_hook_count() == 0
    after = tiny_model.bridge.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_parallel_traces_do_not_interfere(gpt2_model):
    prompts = ["The cat sat on the mat.", "One, two, three, four", "When Mary and John went"]
    expected = [run_trace(gpt2_model, p) for p in prompts]
    results: dict[int, list] = {i: [] for i in range(len(prompts))}
    errors = []

    def work(i):
        try:
            for _ in range(5):
                results[i].append(run_trace(gpt2_model, prompts[i]))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, traces in results.items():
        for trace in traces:
            assert torch.equal(trace.tokens, expected[i].tokens)
            torch.testing.assert_close(trace.logits, expected[i].logits)
            torch.testing.assert_close(trace.pattern(1), expected[i].pattern(1))
    assert gpt2_model.active_hook_count() == 0


def test_empty_prompt(gpt2_model):
    with pytest.raises(PromptError, match="empty"):
        run_trace(gpt2_model, "")
    with pytest.raises(PromptError, match="empty"):
        run_trace(gpt2_model, [])


def test_prompt_longer_than_context_says_both_lengths(gpt2_model):
    with pytest.raises(PromptError) as err:
        run_trace(gpt2_model, "the cat " * 100)
    message = str(err.value)
    assert "at most 64 tokens" in message and "tokens long" in message


def test_non_utf8_and_control_characters_tokenize(tiny_model):
    trace = run_trace(tiny_model, b"caf\xc3\xa9 \xff\xfe bytes")
    assert trace.n_tokens > 3
    trace = run_trace(tiny_model, "tab\tnull\x00 bell\x07 esc\x1b[0m \ud800 lone surrogate")
    assert trace.n_tokens > 5
    assert torch.isfinite(trace.logits).all()


def test_token_ids_input(gpt2_model):
    ids = gpt2_model.encode("The cat")
    trace = run_trace(gpt2_model, ids.tolist())
    torch.testing.assert_close(trace.logits, run_trace(gpt2_model, "The cat").logits)
    with pytest.raises(PromptError, match="outside the vocabulary"):
        run_trace(gpt2_model, [1, 2, 10**6])


def test_nan_activations_name_the_layer(tmp_path):
    folder = make_tiny_model(tmp_path / "nan", "gpt2", n_layers=3)
    weights = load_file(folder / "model.safetensors")
    key = next(k for k in weights if k.endswith("h.1.mlp.c_proj.weight"))
    weights[key][0, 0] = float("nan")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    model = load_model(str(folder), device="cpu")
    with pytest.raises(NonFiniteActivationError, match="MLP of layer 1") as err:
        run_trace(model, "The cat sat")
    assert err.value.layer == 1


def test_short_prompts_keep_the_pattern_where_it_is_no_larger(tiny_model):
    """Route kinds for prompts of n tokens: the pattern (H n^2 floats a layer) where it is no
    larger than the queries and keys ((H + H_kv) n d_head), else q and k."""
    from lmtt.models.trace import route_kinds

    d = tiny_model.dims
    edge = (d.n_heads + d.n_kv_heads) * d.d_head // d.n_heads  # the longest prompt kept whole
    assert "pattern" in route_kinds(tiny_model, edge) and "q" not in route_kinds(tiny_model, edge)
    assert {"q", "k"} <= route_kinds(tiny_model, edge + 1)
    assert "pattern" not in route_kinds(tiny_model, edge + 1)
    assert route_kinds(tiny_model) == route_kinds(tiny_model, edge + 1)  # unknown length: q, k
