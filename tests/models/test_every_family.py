"""Every supported family, as a tiny random Hugging Face folder built from transformers' own
config class and loaded through the path users take: its logits equal transformers', and the
invariants of DESIGN.md section 6 hold (conservation, contributions summing to 1, lazy routes
equal to the full graph pruned, the logit lens of the last residual equal to the logits)."""

from __future__ import annotations

import pytest
import torch

from lmtt.flow import contributions as C
from lmtt.flow import decompose
from lmtt.flow.graph import build_graph, routes
from lmtt.flow.lens import lens_logits
from lmtt.models import load_model
from lmtt.models.trace import route_kinds, run_trace
from lmtt.testing import make_tiny_model

PROMPT = "When Mary and John went to the store, John gave a drink to"
SEQUENTIAL = ["gpt2", "gpt_neo", "opt", "llama", "mistral", "qwen2", "qwen3", "gemma", "phi3",
              "stablelm", "olmo", "bloom"]  # fmt: skip
SANDWICH = ["gemma2", "gemma3_text", "olmo2"]
PARALLEL = ["gptj", "gpt_neox", "phi", "falcon"]
EXPERTS = ["mixtral", "qwen2_moe"]
DECODERS = SEQUENTIAL + SANDWICH + PARALLEL + EXPERTS


@pytest.fixture(scope="module", params=DECODERS)
def family_model(request, tmp_path_factory):
    folder = make_tiny_model(tmp_path_factory.mktemp(request.param) / "m", request.param,
                             n_layers=2, d_model=32, n_heads=4, n_kv_heads=2)  # fmt: skip
    return request.param, folder, load_model(str(folder), device="cpu")


def test_logits_equal_transformers(family_model):
    from transformers import AutoModelForCausalLM

    arch, folder, model = family_model
    trace = run_trace(model, PROMPT)
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        want = hf(trace.tokens[None]).logits[0]
    torch.testing.assert_close(trace.logits, want, atol=1e-4, rtol=1e-4)
    assert model.family.norm == ("rmsnorm" if model.bridge.cfg.normalization_type == "RMS"
                                 else "layernorm")  # fmt: skip


def test_invariants(family_model):
    arch, _, model = family_model
    trace = run_trace(model, PROMPT)
    for layer in range(trace.n_layers):
        assert decompose.attention_conservation_error(trace, layer) < 1e-5, (arch, layer)
        assert decompose.mlp_conservation_error(trace, layer) < 1e-5, (arch, layer)
        a = C.attention_contributions(trace, layer)
        total = a.heads.sum((1, 2)) + a.residual + (0 if a.mlp is None else a.mlp)
        torch.testing.assert_close(total, torch.ones_like(total))
        assert a.heads.min() >= 0 and a.heads.max() <= 1
        n = C.neuron_contributions(trace, layer, [trace.n_tokens - 1])
        torch.testing.assert_close(n.neurons.sum(1) + n.residual, torch.ones(1))
    lens = lens_logits(trace, trace.resid_post(trace.n_layers - 1))
    torch.testing.assert_close(lens, trace.logits, atol=1e-4, rtol=1e-4)
    full = build_graph(trace)
    for threshold in (0.01, 0.05, 0.2):
        assert routes(trace, None, threshold) == full.prune(None, threshold)
    graph = routes(trace, threshold=0.05)
    assert any(e.kind == "attention" for e in graph.edges)


def test_queries_and_keys_rebuild_the_pattern_or_their_views_are_refused(family_model):
    from lmtt.attention.qk import qk_breakdown
    from lmtt.attention.views import capture_attention
    from lmtt.errors import AttentionViewError

    arch, _, model = family_model
    trace = capture_attention(model, PROMPT)
    if model.family.qk_refusal:
        with pytest.raises(AttentionViewError, match="head view and model view"):
            qk_breakdown(trace, 0, 0, trace.n_tokens - 1)
        return
    for layer in range(trace.n_layers):
        scores = torch.einsum("qhd,khd->hqk", trace.queries(layer), trace.keys(layer))
        hidden = ~trace.key_mask(layer)
        scores = trace.scores_from_dots(layer, scores).masked_fill(hidden, float("-inf"))
        torch.testing.assert_close(scores.softmax(-1), trace.pattern(layer), atol=1e-5, rtol=1e-4)


def test_value_map_rebuilds_the_values_and_read_routes_equal_the_full_graph(family_model):
    """The value map a read weight projects on (lmtt.flow.read) is the model's own: it rebuilds
    the traced values; read routes obey invariant 3 like proximity routes."""
    from lmtt.flow.read import Reading
    from lmtt.models.weights import repeat_kv

    arch, _, model = family_model
    trace = run_trace(model, PROMPT)
    for layer in range(trace.n_layers):
        vm = trace.weights.value_map(layer)
        x = trace.resid_pre(layer)
        if vm.norm_w is not None:
            x = decompose.centre(trace, x) * vm.norm_w / trace.ln1_scale(layer) + vm.norm_b
        rebuilt = torch.einsum("td,hde->the", x, vm.W_V) + trace.weights.b_V[layer]
        want = repeat_kv(trace.values(layer), trace.n_heads, dim=1)
        torch.testing.assert_close(rebuilt, want, atol=1e-4, rtol=1e-4, msg=arch)
    full = build_graph(trace)
    for threshold in (0.02, 0.1):
        read = routes(trace, None, threshold, reading=Reading())
        assert read == full.prune(None, threshold, Reading()) and read.score == "read"


def test_route_traces_keep_queries_and_keys_not_the_pattern(family_model):
    """Where q and k make the pattern, a route trace holds them (2 T H d_head floats a layer)
    instead of the H T^2 pattern, and its rows equal the model's own pattern."""
    arch, _, model = family_model
    text = " ".join([PROMPT] * 2)  # over 40 tokens: two blocks of 32 rows
    trace = run_trace(model, text)
    own = run_trace(model, text, capture={"pattern"})
    rebuilt = model.family.qk_rows  # every family now
    assert (trace.layers("pattern") == ()) == rebuilt, arch
    T = trace.n_tokens
    assert T > 41
    for layer in range(trace.n_layers):
        want = own.pattern(layer)
        torch.testing.assert_close(trace.pattern(layer), want, atol=1e-5, rtol=1e-4, msg=arch)
        for rows in ([T - 1, 0, 5, 5], [T - 2, 3, 40, 33, 34], list(range(33, T - 1)), []):
            got = trace.pattern_rows(layer, rows)
            assert got.shape == (trace.n_heads, len(rows), T)
            torch.testing.assert_close(got, want[:, rows], atol=1e-5, rtol=1e-4, msg=arch)


SLIDING_LAYER_1 = {"use_sliding_window": True, "sliding_window": 4,
                   "layer_types": ["full_attention", "sliding_attention"]}  # fmt: skip


@pytest.mark.parametrize(
    ("arch", "fields"),
    [("mistral", {"sliding_window": 4}), ("gpt2", {"scale_attn_by_inverse_layer_idx": True}),
     ("qwen2", SLIDING_LAYER_1), ("qwen2_moe", SLIDING_LAYER_1)],
    ids=["sliding-window", "inverse-layer-scaling", "qwen2-window-layers", "qwen2-moe-windows"],
)  # fmt: skip
def test_score_rules_rebuild_patterns_beyond_the_plain_dot_product(tmp_path, arch, fields):
    """Mistral's sliding window and GPT-2's optional inverse-layer scaling make the pattern
    more than softmax(q . k / sqrt(d_head)) under the causal mask; the trace's score rules
    (lmtt.models.score_rules) rebuild it from q and k, and the routes stay exact."""
    from transformers import AutoConfig

    folder = make_tiny_model(tmp_path / "m", arch, n_layers=2, d_model=32, n_heads=4)
    config = AutoConfig.from_pretrained(folder)
    for field, value in fields.items():
        setattr(config, field, value)
    config.save_pretrained(folder)
    model = load_model(str(folder), device="cpu")
    trace = run_trace(model, PROMPT)
    own = run_trace(model, PROMPT, capture={"pattern"})
    assert trace.layers("pattern") == () and trace.layers("q") == (0, 1)
    for layer in (0, 1):
        torch.testing.assert_close(trace.pattern(layer), own.pattern(layer), atol=1e-5, rtol=1e-4)
    if arch != "gpt2":
        windows = (None, 4) if "layer_types" in fields else (4, 4)  # a full layer 0, or not
        assert tuple(trace.score_rule(layer).window for layer in (0, 1)) == windows
        assert trace.pattern(1)[:, -1, : trace.n_tokens - 4].abs().max() == 0  # the window
    else:
        assert trace.score_rule(1).scale == pytest.approx(trace.score_rule(0).scale / 2)
    full = build_graph(trace)
    assert routes(trace, None, 0.05) == full.prune(None, 0.05)


def test_a_lean_route_trace_equals_the_eager_one(family_model):
    """Route traces run attention through the fused kernel where nothing reads the pattern
    (lmtt.models.lean_attention); the activations equal the bridge's eager ones."""
    arch, _, model = family_model
    lean = run_trace(model, PROMPT)
    eager = run_trace(model, PROMPT, capture=route_kinds(model) | {"pattern"})
    torch.testing.assert_close(lean.logits, eager.logits, atol=1e-4, rtol=1e-5)
    for key, got in lean.activations.items():
        want = eager.activations[key]
        scale = want.abs().max().clamp_min(1e-6)
        assert (got - want).abs().max() / scale < 1e-5, (arch, key)


# the last prompt's 41 tokens: its pattern rows are rebuilt in two blocks
BATCH = [PROMPT, "The cat sat", "One, two, three, four, five, six, seven, eight, nine"]


@pytest.mark.parametrize("keep", ["qk", "pattern"])
def test_a_stacked_batch_gives_each_prompt_its_own_routes(family_model, keep):
    """Prompts of different lengths in one padded pass, walked as one stacked trace
    (lmtt.flow.stacked, keeping q and k or the pattern): each prompt's routes and attention
    blocks equal its own trace's, and the logits of the one position each prompt unembeds
    equal that position's logits in its own trace."""
    from lmtt.flow.graph import routes_and_blocks
    from lmtt.flow.stacked import stacked_routes
    from lmtt.models.batched import stack_traces

    arch, _, model = family_model
    kinds = route_kinds(model, None if keep == "qk" else 8)
    alone = [run_trace(model, p, capture=kinds) for p in BATCH]
    targets = [alone[0].n_tokens - 1, 1, alone[2].n_tokens - 3]  # not only the last tokens
    stacked = stack_traces(model, BATCH, kinds, logits_at=targets)
    assert stacked.trace.logits is None and stacked.logits.shape == (3, model.dims.d_vocab)
    found = stacked_routes(stacked, targets, 0.05)
    for b, (trace, target) in enumerate(zip(alone, targets, strict=True)):
        torch.testing.assert_close(stacked.logits[b], trace.logits[target], atol=1e-4, rtol=1e-4)
        graph, blocks = routes_and_blocks(trace, target, 0.05)
        mine = found.graphs[b]
        assert (graph is None) == (mine is None), (arch, b)
        if graph is not None:
            assert mine.tokens == graph.tokens and mine.target_positions == (target,)
            assert {e.id for e in mine.edges} == {e.id for e in graph.edges}, (arch, b)
            want = {e.id: e.weight for e in graph.edges}
            assert max(abs(e.weight - want[e.id]) for e in mine.edges) < 1e-4, (arch, b)
        for layer, block in enumerate(blocks):
            torch.testing.assert_close(found.blocks[layer].per_head[b], block.per_head[0],
                                       atol=1e-5, rtol=1e-4)  # fmt: skip
