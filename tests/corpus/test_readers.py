"""Corpus readers (the first piece of the neuron-index issue)."""

import json
import re

import pytest

from lmtt.corpus.readers import CorpusFormatError, ReadReport, read_corpus


def test_conllu_reader_on_the_shared_ud_files(shared_data):
    folder = shared_data / "ud-english-ewt"
    report = ReadReport()
    docs = list(read_corpus(folder, report))
    # Independent count: sentence ids, and word lines with an integer ID (no ranges/empty nodes).
    files = sorted(folder.glob("*.conllu"))
    sentences = sum(
        f.read_text().count("\n# sent_id") + f.read_text().startswith("# sent_id") for f in files
    )
    words = sum(len(re.findall(r"^\d+\t", f.read_text(), flags=re.M)) for f in files)
    assert report.files == 2  # LICENSE.txt is not read as a corpus
    assert len(docs) == report.documents == sentences == 4078
    assert sum(len(d.words) for d in docs) == words
    first = docs[0]
    assert first.text.startswith("From the AP comes this story")
    assert len(first.words) == len(first.upos) == len(first.deprel)
    assert first.upos[:3] == ("ADP", "DET", "PROPN") and first.deprel[0] == "case"


def test_plain_text_paragraphs_and_invalid_utf8(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(b"First line\nsecond line\n\nbad \xff\xfe line\n\nlast paragraph\n")
    report = ReadReport()
    docs = list(read_corpus(corpus, report))
    assert [d.text for d in docs] == ["First line\nsecond line", "last paragraph"]
    assert [d.doc_id for d in docs] == ["c.txt:1", "c.txt:6"]
    assert report.skipped_invalid_utf8 == 1 and report.skipped_lines == [f"{corpus}:4"]


def test_jsonl(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"id": "a", "text": "hello"}) + "\n\n" + json.dumps({"text": "x"}))
    docs = list(read_corpus(corpus))
    assert [(d.doc_id, d.text) for d in docs] == [("a", "hello"), ("c.jsonl:3", "x")]
    corpus.write_text('{"text": "ok"}\n{"txt": "no text field"}\n')
    with pytest.raises(CorpusFormatError, match=r"c.jsonl:2: expected an object"):
        list(read_corpus(corpus))
    corpus.write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(CorpusFormatError, match=r"c.jsonl:2: not valid JSON"):
        list(read_corpus(corpus))


def test_malformed_conllu_names_file_and_line(tmp_path):
    corpus = tmp_path / "bad.conllu"
    corpus.write_text("# sent_id = s1\n1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n2\tcat cat\tNOUN\n\n")
    with pytest.raises(CorpusFormatError, match=r"bad.conllu:3: .*10 tab-separated columns"):
        list(read_corpus(corpus))


def test_empty_missing_and_unknown_corpora(tmp_path):
    with pytest.raises(CorpusFormatError, match="does not exist"):
        list(read_corpus(tmp_path / "nope.txt"))
    with pytest.raises(CorpusFormatError, match="no .txt, .jsonl or .conllu"):
        list(read_corpus(tmp_path))
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(CorpusFormatError, match="Unknown corpus format"):
        list(read_corpus(tmp_path / "data.csv"))
    (tmp_path / "empty.txt").write_text("\n\n")
    report = ReadReport()
    assert list(read_corpus(tmp_path / "empty.txt", report)) == [] and report.documents == 0
