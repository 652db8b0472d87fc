"""The neuron index job: brute force, shards + merge, resume, storage queries, bad input."""

from __future__ import annotations

from dataclasses import replace

import pyarrow.parquet as pq
import pytest
import torch

from lmtt.corpus.readers import read_corpus
from lmtt.corpus.windows import windows
from lmtt.errors import NeuronIndexError, OutOfRangeError
from lmtt.index.neuron_index import IndexSettings, index_neurons
from lmtt.index.neuron_merge import merge_index
from lmtt.index.neuron_store import open_index
from lmtt.models.trace import run_trace

PARAGRAPHS = [
    "First Citizen:\nBefore we proceed any further, hear me speak.",
    "All:\nSpeak, speak.",
    "First Citizen:\nYou are all resolved rather to die than to famish?",
    "All:\nResolved. resolved.",
    "First Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.",
    "Second Citizen:\nWould you proceed especially against Caius Marcius?",
    "MENENIUS:\nWhat work's, my countrymen, in hand? where go you\nWith bats and clubs?",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "plays.txt"
    path.write_text("\n\n".join(PARAGRAPHS * 3) + "\n", encoding="utf-8")
    return path


def settings_for(model, corpus, **kw) -> IndexSettings:
    d = model.dims
    base = dict(top_k=4, window=16, batch_size=3, chunk_windows=2, context=5)
    return IndexSettings(model.name, str(corpus), d.n_layers, d.d_mlp, **(base | kw))


def tables(folder):
    return [pq.read_table(folder / name) for name in ("neurons.parquet", "examples.parquet")]


@pytest.fixture(scope="module")
def single(gpt2_model, corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("single") / "index"
    index_neurons(gpt2_model, corpus, folder, settings_for(gpt2_model, corpus), progress=False)
    return folder


def test_top_examples_and_statistics_match_brute_force(gpt2_model, corpus, single):
    """Every window run alone (no batching), every activation kept, sorted by hand."""
    model, s = gpt2_model, settings_for(gpt2_model, corpus)
    acts, index = [], []
    for win in windows(read_corpus(corpus), model.tokenizer, s.window):
        trace = run_trace(model, win.ids, capture={"mlp_post"})
        keep = win.token_index >= 0
        layers = range(model.dims.n_layers)
        acts.append(torch.stack([trace.mlp_post(x)[keep] for x in layers], dim=1))  # [M, L, N]
        index.append(win.token_index[keep])
    acts, index = torch.cat(acts), torch.cat(index)
    assert torch.equal(index, torch.arange(len(index)))
    examples = pq.read_table(single / "examples.parquet").to_pandas()
    neurons = pq.read_table(single / "neurons.parquet").to_pandas()
    for layer in range(model.dims.n_layers):
        for neuron in range(0, model.dims.d_mlp, 7):
            column = acts[:, layer, neuron]
            ranked = sorted(range(len(column)), key=lambda t: (-float(column[t]), t))[: s.top_k]
            got = examples[(examples.layer == layer) & (examples.neuron == neuron)]
            assert list(got["rank"]) == list(range(s.top_k))
            torch.testing.assert_close(
                torch.tensor(got.activation.values), column[ranked], atol=1e-5, rtol=1e-5
            )
            # indices may swap only between near-equal activations
            for want, have in zip(ranked, got.token_index, strict=True):
                assert want == have or abs(float(column[want] - column[have])) < 1e-5
            row = neurons[(neurons.layer == layer) & (neurons.neuron == neuron)].iloc[0]
            assert row["count"] == len(column)
            assert row["max"] == pytest.approx(float(column.max()), abs=1e-5)
            assert row["mean"] == pytest.approx(float(column.double().mean()), abs=1e-5)
            assert row["fraction_active"] == pytest.approx(float((column > 0).float().mean()))


def test_query_functions(single, gpt2_model):
    index = open_index(single)
    ex = index.top_examples(1, 3)
    assert [e.rank for e in ex] == [0, 1, 2, 3]
    assert all(a.activation >= b.activation for a, b in zip(ex, ex[1:], strict=False))
    first = ex[0]
    assert index.summary(1, 3).max == pytest.approx(first.activation)
    # the context is the document's text around the token
    doc_text = next(p for p in PARAGRAPHS if (first.left + first.token + first.right) in p)
    assert first.token in doc_text
    assert len(index.top_examples(1, 3, k=2, context=0)) == 2
    assert index.top_examples(1, 3, context=0)[0].left == ""
    hits = index.neurons_for_token(first.token)
    assert any(h.layer == 1 and h.neuron == 3 for h in hits)
    assert all(a.hits >= b.hits for a, b in zip(hits, hits[1:], strict=False))
    assert index.upos_histogram(1, 3) == {}  # plain text: no tags
    with pytest.raises(OutOfRangeError, match="out of range: 0..2"):
        index.top_examples(3, 0)
    with pytest.raises(OutOfRangeError, match=r"out of range: 0\.\.\d+"):
        index.top_examples(0, model_neurons := gpt2_model.dims.d_mlp)
    assert model_neurons > 0
    with pytest.raises(NeuronIndexError, match="non-blank"):
        index.neurons_for_token("  ")


def test_sharded_and_merged_equals_single_run(gpt2_model, corpus, single, tmp_path):
    s = settings_for(gpt2_model, corpus)
    folders = [tmp_path / f"shard{i}" for i in range(3)]
    for i in (2, 0, 1):  # any order
        state = index_neurons(gpt2_model, corpus, folders[i], s, (i, 3), progress=False)
        assert state.complete and not (folders[i] / "examples.parquet").exists()
    with pytest.raises(NeuronIndexError, match=r"missing \[1\]"):
        merge_index(tmp_path / "partial", [folders[0], folders[2]])
    merged = merge_index(tmp_path / "merged", folders)
    for a, b in zip(tables(merged), tables(single), strict=True):
        assert a.equals(b)
    assert (
        open_index(merged).manifest["corpus_tokens"] == open_index(single).manifest["corpus_tokens"]
    )


def test_interrupted_run_resumes_to_the_identical_index(
    gpt2_model, corpus, single, tmp_path, monkeypatch
):
    import lmtt.index.neuron_index as job

    s = settings_for(gpt2_model, corpus)
    real_save, calls = job.save_state, []

    def crash_after_two(path, state):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(state.next_chunk)
        real_save(path, state)

    monkeypatch.setattr(job, "save_state", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        index_neurons(gpt2_model, corpus, tmp_path / "run", s, progress=False)
    monkeypatch.setattr(job, "save_state", real_save)
    assert calls == [1, 2]
    state = job.load_state(job.state_path(tmp_path / "run", 0, 1))
    assert state.next_chunk == 2 and not state.complete
    with pytest.raises(NeuronIndexError, match="unfinished"):
        open_index(tmp_path / "run")
    index_neurons(gpt2_model, corpus, tmp_path / "run", s, progress=False)
    for a, b in zip(tables(tmp_path / "run"), tables(single), strict=True):
        assert a.equals(b)


def test_folder_rules(gpt2_model, corpus, single, tmp_path):
    s = settings_for(gpt2_model, corpus)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(NeuronIndexError, match="not empty and is not an lmtt index"):
        index_neurons(gpt2_model, corpus, foreign, s, progress=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    with pytest.raises(NeuronIndexError, match="top_k: folder has 4, asked 5"):
        index_neurons(gpt2_model, corpus, single, replace(s, top_k=5), progress=False)
    with pytest.raises(NeuronIndexError, match="--shard 3/3"):
        index_neurons(gpt2_model, corpus, tmp_path / "x", s, (3, 3), progress=False)
    with pytest.raises(NeuronIndexError, match="--top-k must be at least 1"):
        index_neurons(gpt2_model, corpus, tmp_path / "x", replace(s, top_k=0), progress=False)


def test_empty_corpus_and_invalid_utf8(gpt2_model, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n")
    s = settings_for(gpt2_model, empty)
    with pytest.raises(NeuronIndexError, match="no text to index"):
        index_neurons(gpt2_model, empty, tmp_path / "out", s, progress=False)
    assert not (tmp_path / "out").exists()
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"Good line one.\n\xff\xfe broken\nGood line three.\n")
    index_neurons(gpt2_model, bad, tmp_path / "bad", settings_for(gpt2_model, bad), progress=False)
    assert open_index(tmp_path / "bad").manifest["skipped_invalid_utf8"] == 1


def test_conllu_corpus_keeps_upos(gpt2_model, shared_data, tmp_path):
    corpus = shared_data / "ud-english-ewt" / "en_ewt-ud-test.conllu"
    s = settings_for(gpt2_model, corpus, window=32, max_tokens=600)
    index_neurons(gpt2_model, corpus, tmp_path / "ud", s, progress=False)
    index = open_index(tmp_path / "ud")
    assert index.manifest["corpus_tokens"] == 600
    tokens = pq.read_table(sorted((tmp_path / "ud" / "tokens").glob("*.parquet"))).to_pandas()
    assert len(tokens) == 600 and tokens.token_index.is_monotonic_increasing
    words = tokens[tokens.token.str.strip() != ""]  # spaces belong to no word
    assert words.upos.notna().all()
    # "What if Google Morphed Into GoogleOS?": the pieces of 'What' are a PRON, of 'if' SCONJ
    first = tokens.iloc[:6]
    assert "".join(first.token) == "What if" and list(first.position) == list(range(6))
    assert list(first.upos.fillna("-")) == ["PRON"] * 3 + ["-"] + ["SCONJ"] * 2
    hist = index.upos_histogram(0, 0)
    assert sum(hist.values()) == s.top_k and set(hist) <= set(tokens.upos.dropna())


def test_word_tags_align_tokens_to_words():
    from lmtt.corpus.readers import Document
    from lmtt.corpus.windows import word_tags

    doc = Document(
        "d", "The cat's toys", ("The", "cat", "'s", "toys"), ("DET", "NOUN", "PART", "NOUN")
    )
    offsets = [(0, 3), (3, 7), (7, 9), (9, 14)]  # "The", " cat", "'s", " toys"
    assert word_tags(doc, offsets) == ["DET", "NOUN", "PART", "NOUN"]
    assert word_tags(Document("d", "x"), [(0, 1)]) == [None]
    mismatch = Document("d", "abc", ("zzz",), ("X",))
    assert word_tags(mismatch, [(0, 3)]) == [None]
