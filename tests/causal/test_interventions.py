"""Interventions in real forward passes: batched equals one at a time, starting at a later
layer equals the full pass, removals mean what they say, and transformers itself agrees."""

import pytest
import torch

from lmtt.causal.interventions import (
    AttentionEdge,
    AttentionWrite,
    HeadWrite,
    Intervention,
    MlpWrite,
    Neuron,
    Residual,
    Skip,
)
from lmtt.causal.metric import make_metric
from lmtt.causal.reference import mean_reference, patch_reference
from lmtt.causal.run import compile_edits, run_scenarios
from lmtt.errors import InterventionError, OutOfRangeError
from lmtt.models import load_model
from lmtt.models.intervene import run_edited
from lmtt.models.trace import run_trace
from lmtt.testing import make_tiny_bert, make_tiny_model

PROMPT = "When Mary and John went to the store, John gave a drink to"
ARCHS = ["gpt2", "llama", "gpt_neox", "gemma2", "bert"]


@pytest.fixture(scope="module", params=ARCHS)
def family(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param) / "m"
    if request.param == "bert":
        make_tiny_bert(folder)
        text = "the cat sat on the mat and the dog sat on the cat"
    else:
        make_tiny_model(folder, request.param, n_kv_heads=2)
        text = PROMPT
    model = load_model(str(folder), device="cpu")
    trace = run_trace(model, text)
    return request.param, folder, model, trace, make_metric(model, trace, kind="logit")


def _scenarios(model, trace):
    T, q = trace.n_tokens, trace.n_tokens - 1
    out = [[Intervention(AttentionEdge(1, q, j))] for j in range(0, T, 3)]
    out += [
        [Intervention(HeadWrite(0, 1, q))],
        [Intervention(AttentionWrite(1, 2))],
        [Intervention(MlpWrite(0, q)), Intervention(AttentionEdge(0, q, 1, heads=(0, 2)))],
        [Intervention(Neuron(1, 3, q))],
        [Intervention(Residual(1, 4, "pre"))],
        [Intervention(Skip(1, q, "post"))],
        [],
    ]
    if not model.family.parallel:
        out.append([Intervention(Skip(0, q, "mid")), Intervention(Skip(1, 3, "mid"))])
    return out


def test_batched_equals_one_at_a_time(family):
    _, _, model, trace, metric = family
    scenarios = _scenarios(model, trace)
    batched = run_scenarios(model, trace, scenarios, metric, batch=16)
    single = torch.cat([run_scenarios(model, trace, [s], metric, batch=1) for s in scenarios])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)
    clean = float(metric(trace.logits[None]))
    assert float(batched[-2 if not model.family.parallel else -1]) == pytest.approx(clean, abs=1e-4)


def test_starting_at_a_later_layer_changes_nothing(family):
    """A batch starts at its lowest layer from the clean residual: the same as a full pass."""
    _, _, model, trace, metric = family
    edge = [Intervention(AttentionEdge(1, trace.n_tokens - 1, 2))]
    from_layer_1 = run_scenarios(model, trace, [edge], metric)
    logits, _ = run_edited(model, trace.tokens[None], compile_edits(model, [edge], trace.n_tokens))
    torch.testing.assert_close(from_layer_1, metric(logits), atol=1e-5, rtol=1e-5)


def test_removing_every_edge_into_a_block_zeroes_every_head(family):
    """All attention edges into (layer, q) removed = every head's output at q zeroed (the
    block's write less its output bias)."""
    _, _, model, trace, metric = family
    T, q, H = trace.n_tokens, trace.n_tokens - 1, model.dims.n_heads
    keys = range(T) if model.family.is_encoder else range(q + 1)
    edges = [Intervention(AttentionEdge(1, q, j)) for j in keys]
    heads = [Intervention(HeadWrite(1, h, q)) for h in range(H)]
    got = run_scenarios(model, trace, [edges, heads], metric)
    assert float(got[0]) == pytest.approx(float(got[1]), rel=1e-4, abs=1e-4)
    assert abs(float(got[0]) - float(metric(trace.logits[None]))) > 1e-4  # it did something


def test_a_removed_skip_leaves_only_the_attention_term(family):
    """Skip(l, q, mid) and the MLP's write removed: the block's output at q is exactly what the
    attention added (pre-norm and sandwich blocks)."""
    _, _, model, trace, _ = family
    if model.family.parallel or model.family.norm_placement == "post":
        pytest.skip("parallel blocks have no middle; post-norm blocks norm the sum")
    q = trace.n_tokens - 1
    scenario = [[Intervention(Skip(1, q, "mid")), Intervention(MlpWrite(1, q))]]
    keep = [("resid_post", 1), ("attn_added", 1)]
    _, acts = run_edited(
        model, trace.tokens[None], compile_edits(model, scenario, q + 1), keep=keep
    )
    torch.testing.assert_close(acts[keep[0]][0, q], acts[keep[1]][0, q], atol=1e-5, rtol=1e-5)


O_PROJ = {"gpt2": "h.1.attn.c_proj", "llama": "layers.1.self_attn.o_proj",
          "gpt_neox": "layers.1.attention.dense", "gemma2": "layers.1.self_attn.o_proj",
          "bert": "layer.1.attention.output.dense"}  # fmt: skip


def test_transformers_agrees_on_a_removed_head(family):
    """Independent reference: plain transformers with the head's slice of the output
    projection's input zeroed at q (a torch pre-hook) gives the same logits."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    arch, folder, model, trace, metric = family
    auto = AutoModelForMaskedLM if arch == "bert" else AutoModelForCausalLM
    hf = auto.from_pretrained(folder).eval()
    module = next(m for name, m in hf.named_modules() if name.endswith(O_PROJ[arch]))
    q, head, d = trace.n_tokens - 1, 1, model.dims.d_head

    def zero_head(mod, args):
        x = args[0].clone()
        x[:, q, head * d : (head + 1) * d] = 0
        return (x,)

    handle = module.register_forward_pre_hook(zero_head)
    try:
        with torch.no_grad():
            want = metric(hf(trace.tokens[None]).logits)
    finally:
        handle.remove()
    got = run_scenarios(model, trace, [[Intervention(HeadWrite(1, head, q))]], metric)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_patching_a_whole_residual_gives_the_counterfactual_run(family):
    """Patch the residual entering layer 1 at every position from a counterfactual prompt of
    the same length: the output is the counterfactual's."""
    _, _, model, trace, metric = family
    other = torch.flip(trace.tokens, [0])
    ref = patch_reference(model, other, trace.n_tokens, points=[("resid_pre", 1)])
    scenario = [Intervention(Residual(1, p, "pre"), "patch") for p in range(trace.n_tokens)]
    got = run_scenarios(model, trace, [scenario], metric, reference=ref)
    want = metric(run_trace(model, other, capture={"resid_pre"}).logits[None])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_mean_values_are_the_mean_over_prompts(family):
    arch, _, model, trace, _ = family
    prompts = ["the cat sat", "the dog sat on the mat"]
    ref = mean_reference(model, prompts, points=[("mlp_write", 0)])
    acts = [run_edited(model, model.encode(p)[None], keep=[("mlp_write", 0)])[1] for p in prompts]
    want = torch.cat([a[("mlp_write", 0)][0] for a in acts]).mean(0)
    torch.testing.assert_close(ref.values[("mlp_write", 0)], want, atol=1e-5, rtol=1e-5)


def test_bad_interventions_say_what_to_do(family):
    _, _, model, trace, metric = family
    T = trace.n_tokens
    with pytest.raises(OutOfRangeError, match="Layer 9"):
        run_scenarios(model, trace, [[Intervention(MlpWrite(9, 0))]], metric)
    with pytest.raises(OutOfRangeError, match="Head 99"):
        run_scenarios(model, trace, [[Intervention(HeadWrite(0, 99, 0))]], metric)
    with pytest.raises(InterventionError, match="removed, not replaced"):
        run_scenarios(model, trace, [[Intervention(AttentionEdge(0, 1, 0), "mean")]], metric)
    with pytest.raises(InterventionError, match="needs a patch reference"):
        run_scenarios(model, trace, [[Intervention(MlpWrite(0, 1), "patch")]], metric)
    if model.family.causal:
        with pytest.raises(InterventionError, match="later key"):
            run_scenarios(model, trace, [[Intervention(AttentionEdge(0, 1, T - 1))]], metric)
    with pytest.raises(InterventionError, match="same length"):
        patch_reference(model, "a much longer counterfactual prompt than that", 3)
