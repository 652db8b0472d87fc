"""Lean attention (lmtt.models.lean_attention, lean_rotary): a capture that does not read the
pattern runs GPT-2's and Llama's attention through the fused kernel, with no T x T tensor,
and gets the same activations as the bridge's eager attention (every family:
tests/models/test_every_family.py)."""

import pytest
import torch
from transformer_lens.model_bridge.generalized_components.joint_qkv_attention import (
    JointQKVAttentionBridge,
)
from transformer_lens.model_bridge.generalized_components.position_embeddings_attention import (
    PositionEmbeddingsAttentionBridge,
)

from lmtt.models.lean_attention import lean_attention
from lmtt.models.lean_rotary import can_be_lean
from lmtt.models.trace import route_kinds, run_trace

PROMPT = "When Mary and John went to the store, John gave a drink to"


def test_a_route_trace_never_builds_the_pattern(gpt2_model, monkeypatch):
    def eager(*args, **kwargs):
        raise AssertionError("the eager pattern was computed")

    monkeypatch.setattr(JointQKVAttentionBridge, "_softmax_dropout_pattern", eager)
    trace = run_trace(gpt2_model, PROMPT)  # lean: the patched softmax is never reached
    assert trace.layers("pattern") == ()
    with pytest.raises(AssertionError, match="eager pattern"):
        run_trace(gpt2_model, PROMPT, capture={"pattern"})  # the pattern needs the eager path


def test_lean_activations_equal_the_eager_ones(gpt2_model):
    lean = run_trace(gpt2_model, PROMPT)
    eager = run_trace(gpt2_model, PROMPT, capture=route_kinds(gpt2_model) | {"pattern"})
    torch.testing.assert_close(lean.logits, eager.logits, atol=1e-5, rtol=1e-5)
    for layer in range(lean.n_layers):
        for kind in ("resid_mid", "q", "k", "v", "mlp_post"):
            got, want = lean.activations[(kind, layer)], eager.activations[(kind, layer)]
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lean.pattern(layer), eager.pattern(layer), atol=1e-5, rtol=1e-4)


def test_modules_are_restored_and_keep_no_pattern(gpt2_model):
    run_trace(gpt2_model, PROMPT, capture={"pattern"})
    run_trace(gpt2_model, PROMPT)
    for block in gpt2_model.bridge.blocks:
        assert "_reconstruct_attention" not in vars(block.attn)  # the class's method
        assert block.attn._pattern is None  # the bridge's kept pattern was let go


def test_a_llama_route_trace_never_builds_the_pattern(llama_model, monkeypatch):
    def eager(*args, **kwargs):
        raise AssertionError("the eager pattern was computed")

    monkeypatch.setattr(PositionEmbeddingsAttentionBridge, "_masked_softmax", eager)
    trace = run_trace(llama_model, PROMPT)
    assert trace.layers("pattern") == () and trace.layers("q") == (0, 1, 2)
    with pytest.raises(AssertionError, match="eager pattern"):
        run_trace(llama_model, PROMPT, capture={"pattern"})


def test_llama_modules_are_restored(llama_model):
    with lean_attention(llama_model.bridge, True) as n_lean:
        assert n_lean == 3 and all("forward" in vars(b.attn) for b in llama_model.bridge.blocks)
    for block in llama_model.bridge.blocks:
        assert "forward" not in vars(block.attn)  # the class's forward again
        assert "forward" not in vars(block.attn.original_component)  # the HF module untouched


@pytest.mark.parametrize(
    "variant",
    [{"past_key_values": object()}, {"layer_past": object()}],
    ids=["kv-cache", "layer-past"],
)
def test_a_cached_call_keeps_the_bridges_forward(llama_model, variant):
    attn = llama_model.bridge.blocks[0].attn
    assert can_be_lean(attn, {}) and not can_be_lean(attn, variant)


def test_soft_capping_keeps_the_bridges_forward(llama_model, monkeypatch):
    attn = llama_model.bridge.blocks[0].attn
    monkeypatch.setattr(attn.original_component, "attn_logit_softcapping", 50.0, raising=False)
    assert not can_be_lean(attn, {})


def test_joint_qkv_rotary_traces_are_lean_and_fire_rotated_queries(tmp_path, monkeypatch):
    """GPT-NeoX's bridge attention registers rotated-q/k hooks but never fires them; lmtt's
    rebuild of it fires them, eager (with the pattern) or lean (without)."""
    from lmtt.models import load_model
    from lmtt.testing import make_tiny_model

    neox = load_model(str(make_tiny_model(tmp_path / "neox", "gpt_neox", n_layers=2)), "cpu")
    eager_trace = run_trace(neox, PROMPT, capture={"pattern", "q", "k"})
    with torch.inference_mode():  # the bridge's own attention, outside lmtt's rebuild
        _, own = neox.bridge.run_with_cache(eager_trace.tokens[None], return_cache_object=False)
    for layer in (0, 1):
        want = own[f"blocks.{layer}.attn.hook_pattern"][0]
        torch.testing.assert_close(eager_trace.pattern(layer), want, atol=1e-6, rtol=1e-5)

    def eager(*args, **kwargs):
        raise AssertionError("the eager pattern was computed")

    monkeypatch.setattr(JointQKVAttentionBridge, "_softmax_dropout_pattern", eager)
    trace = run_trace(neox, PROMPT)
    assert trace.layers("pattern") == () and trace.layers("q") == (0, 1)
    for layer in (0, 1):
        torch.testing.assert_close(trace.queries(layer), eager_trace.queries(layer))
        got = trace.pattern_rows(layer, list(range(trace.n_tokens)))
        torch.testing.assert_close(got, eager_trace.pattern(layer), atol=1e-5, rtol=1e-4)
    for block in neox.bridge.blocks:
        assert "_reconstruct_attention" not in vars(block.attn)


def test_an_exactly_causal_mask_takes_the_kernels_causal_path(gpt2_model):
    """Hugging Face's 4D causal mask is recognised (the kernel's faster causal path); a mask
    with padding, or another batch shape, is passed on as it is."""
    from lmtt.models.fused_attention import fused_mask

    attn = gpt2_model.bridge.blocks[0].attn
    T, low = 6, torch.finfo(torch.float32).min
    causal = torch.zeros(1, 1, T, T).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), low)
    assert fused_mask(attn, {"attention_mask": causal}, T) is None
    assert fused_mask(attn, {"attention_mask": causal.isfinite() & (causal == 0)}, T) is None
    padded = causal.clone()
    padded[..., -1] = low  # the last key is padding
    assert fused_mask(attn, {"attention_mask": padded}, T) is padded
    two = causal.expand(2, 1, T, T)
    assert fused_mask(attn, {"attention_mask": two}, T) is two
    assert fused_mask(attn, {"attention_mask": causal[0]}, T) is False  # not 4D
    seen: dict = {}  # one forward pass: every layer's call on one mask checks it once
    for _ in range(3):
        assert fused_mask(attn, {"attention_mask": causal}, T, seen) is None
        assert fused_mask(attn, {"attention_mask": padded}, T, seen) is padded
    assert [entry[1] for entry in seen.values()] == [True, False]
