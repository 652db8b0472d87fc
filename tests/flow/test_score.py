"""Why a head attends: the score split over upstream parts sums to the model's score, and on
the hand-built induction circuit names the previous-token head on the key side."""

import pytest
import torch

from lmtt.flow.score import part_labels, residual_parts, score_decomposition, score_kinds
from lmtt.models import load_model
from lmtt.models.qk_weights import ScoreDecompositionError
from lmtt.models.trace import run_trace
from lmtt.testing import make_tiny_bert, make_tiny_model

# LayerNorm with centring (GPT-2, GPT-Neo's unscaled windowed layers, OPT), RMSNorm with
# rotary and grouped-query attention (Llama and its relatives), partial rotary (Phi,
# StableLM), Gemma's offset norm, query/key norms per head (Qwen3) and over every head (OLMo 2,
# with sandwich norms), mixtures of experts, joint-QKV rotary attention (GPT-NeoX, Falcon's
# multi-query, Phi-3), Gemma 2's soft-capped and Gemma 3's two-base rotary scores with query
# scalars, and the post-norm encoder.
ARCHS = ["gpt2", "gpt_neo", "opt", "llama", "qwen2", "qwen3", "gemma", "phi", "stablelm", "olmo",
         "olmo2", "mixtral", "qwen2_moe", "gpt_neox", "falcon", "phi3", "gemma2", "gemma3_text",
         "bert"]  # fmt: skip
PROMPT = "When Mary and John went to the store, John gave"


@pytest.fixture(scope="module", params=ARCHS)
def traced(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param) / "m"
    if request.param == "bert":
        make_tiny_bert(folder, n_layers=3)
        text = "the cat sat on the mat and the dog sat"
    else:
        make_tiny_model(folder, request.param, n_layers=3, n_kv_heads=2)
        text = PROMPT
    model = load_model(str(folder), "cpu")
    return run_trace(model, text, capture=score_kinds(model.family))


def test_the_parts_sum_to_the_residual(traced):
    for layer in range(traced.n_layers):
        parts = residual_parts(traced, layer, 3)
        assert len(parts) == len(part_labels(traced, layer)) - 1
        torch.testing.assert_close(parts.sum(0), traced.resid_pre(layer)[3], atol=1e-4, rtol=1e-4)


QUERY = 5  # keys 2 and 4 are within the tiny models' sliding windows of 4 from here


def test_the_terms_sum_to_the_models_score(traced):
    q = QUERY
    for layer in range(traced.n_layers):
        for head in (0, traced.n_heads - 1):
            s = score_decomposition(traced, layer, head, query=q, key=2)
            assert s.terms.shape == (len(s.labels), len(s.labels))
            assert s.total == pytest.approx(s.score, rel=1e-4, abs=1e-5)
            scores = traced.queries(layer)[q, head] @ traced.keys(layer)[:, head].T
            scale = traced.score_rule(layer).scale
            assert s.score == pytest.approx(float(scores[2]) * scale, abs=1e-5)


def test_the_contrast_is_the_difference_of_two_keys(traced):
    q = QUERY
    a = score_decomposition(traced, 1, 0, q, 2)
    b = score_decomposition(traced, 1, 0, q, 4)
    vs = score_decomposition(traced, 1, 0, q, 2, other=4)
    torch.testing.assert_close(vs.terms, a.terms - b.terms)
    assert vs.total == pytest.approx(a.score - b.score, rel=1e-4, abs=1e-5)


def test_groups_and_sides_keep_the_total(traced):
    s = score_decomposition(traced, 2, 1, QUERY, 2)
    for group in ("layer", "kind"):
        names, terms = s.grouped(group)
        assert float(terms.sum()) == pytest.approx(s.total, rel=1e-5, abs=1e-6)
    assert s.grouped("layer")[0] == ("embedding", "L0", "L1", "bias")
    assert s.grouped("kind")[0] == ("embedding", "head", "bias", "MLP")
    by_query, by_key = s.by_side()
    assert float(by_query.sum()) == pytest.approx(float(by_key.sum()), rel=1e-5, abs=1e-6)


def test_the_induction_heads_key_reads_the_previous_token_head(circuit):
    """On <bos> A B C D A, the induction head L1H0 attends from the last A to B (position 2)
    because its query (the current token A: the embedding) matches its key (the previous
    token A, written at position 2 by L0H0): that pair is the score, and against another key
    it is the whole difference."""
    _, trace, _ = circuit
    s = score_decomposition(trace, 1, 0, query=5, key=2)
    (top_q, top_k, value), *rest = s.top_pairs(3)
    assert (top_q, top_k) == ("embedding", "L0 H0")
    assert value == pytest.approx(s.total, rel=0.01)
    vs = score_decomposition(trace, 1, 0, query=5, key=3, other=None)
    contrast = score_decomposition(trace, 1, 0, query=5, key=2, other=3)
    assert contrast.total == pytest.approx(s.total - vs.total, rel=1e-4)
    assert contrast.top_pairs(1)[0][:2] == ("embedding", "L0 H0")


def test_a_key_outside_the_sliding_window_is_refused(tmp_path):
    from lmtt.errors import OutOfRangeError

    make_tiny_model(tmp_path / "m", "gemma2", n_layers=2)  # layer 0 slides over 4 positions
    model = load_model(str(tmp_path / "m"), "cpu")
    trace = run_trace(model, PROMPT, capture=score_kinds(model.family))
    with pytest.raises(OutOfRangeError, match="sliding window of 4 positions: pick a key from 6"):
        score_decomposition(trace, 0, 0, query=9, key=2)
    score_decomposition(trace, 1, 0, query=9, key=2)  # a full-attention layer sees it


def test_bad_positions_and_unsupported_families(circuit, tmp_path):
    from lmtt.errors import OutOfRangeError

    _, trace, _ = circuit
    with pytest.raises(OutOfRangeError):
        score_decomposition(trace, 1, 0, query=2, key=5)  # a later key, for a decoder
    with pytest.raises(OutOfRangeError):
        score_decomposition(trace, 9, 0, query=2, key=1)
    make_tiny_model(tmp_path / "gptj", "gptj", n_layers=2)
    gptj = load_model(str(tmp_path / "gptj"), "cpu")
    t = run_trace(gptj, "hello there", capture=score_kinds(gptj.family))
    with pytest.raises(
        ScoreDecompositionError, match="Scores of GPT-J cannot be split.*interleaved rotation"
    ):
        score_decomposition(t, 1, 0, 1, 0)


def test_the_one_position_writes_equal_the_full_ones(traced):
    from lmtt.flow import decompose as D

    close = {"atol": 1e-5, "rtol": 1e-4}
    for layer in range(traced.n_layers):
        heads = D.head_outputs(traced, layer, [4])[0]
        torch.testing.assert_close(D.head_writes_at(traced, layer, 4), heads, **close)
        mlp = D.mlp_output(traced, layer)[4]
        torch.testing.assert_close(D.mlp_write_at(traced, layer, 4), mlp, **close)
