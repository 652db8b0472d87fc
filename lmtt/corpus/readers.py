"""Streaming corpus readers: plain text, JSON lines (``text`` field) and CoNLL-U.

``read_corpus(path, report)`` yields :class:`Document` objects one at a time (a folder is read
file by file, sorted, skipping licence and readme files), so a corpus never has to fit in
memory. Lines that are not valid UTF-8
are skipped and counted in the :class:`ReadReport`; a malformed JSON or CoNLL-U line raises
:class:`CorpusFormatError` naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lmtt.errors import LmttError

FORMATS = {".txt": "text", ".jsonl": "jsonl", ".json": "jsonl", ".conllu": "conllu"}
NOT_CORPUS = ("license", "licence", "readme", "copying")  # skipped when reading a folder


class CorpusFormatError(LmttError):
    """A corpus file is malformed or of an unknown format."""


@dataclass(frozen=True)
class Document:
    """One unit of a corpus: a paragraph of plain text, a JSON line, or a CoNLL-U sentence."""

    doc_id: str  # "file:line" of its first line, or the CoNLL-U sent_id
    text: str
    words: tuple[str, ...] | None = None  # CoNLL-U word forms
    upos: tuple[str, ...] | None = None  # CoNLL-U universal POS tags, one per word
    deprel: tuple[str, ...] | None = None  # CoNLL-U dependency relations, one per word


@dataclass
class ReadReport:
    """What a read saw; filled in while documents stream."""

    files: int = 0
    documents: int = 0
    skipped_invalid_utf8: int = 0
    skipped_lines: list[str] = field(default_factory=list)  # "file:line" (first 100)

    def skip(self, where: str) -> None:
        self.skipped_invalid_utf8 += 1
        if len(self.skipped_lines) < 100:
            self.skipped_lines.append(where)


def corpus_files(path: str | Path) -> list[Path]:
    path = Path(path)
    if not path.exists():
        raise CorpusFormatError(f"Corpus {path} does not exist.")
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.suffix in FORMATS and not p.stem.lower().startswith(NOT_CORPUS)
        )
    else:
        files = [path]
    if not files:
        raise CorpusFormatError(f"Corpus folder {path} has no .txt, .jsonl or .conllu files.")
    for f in files:
        if f.suffix not in FORMATS:
            raise CorpusFormatError(
                f"Unknown corpus format for {f}: use .txt (plain text), .jsonl (a JSON object "
                "with a 'text' field per line) or .conllu."
            )
    return files


def _lines(path: Path, report: ReadReport) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line without its newline); bad UTF-8 lines are skipped."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                report.skip(f"{path}:{number}")
                continue
            yield number, line.rstrip("\r\n")


def read_text(path: Path, report: ReadReport) -> Iterator[Document]:
    """Paragraphs (runs of non-blank lines) of a plain-text file, newlines kept."""
    start, lines = 0, []
    for number, line in _lines(path, report):
        if line.strip():
            if not lines:
                start = number
            lines.append(line)
        elif lines:
            yield Document(f"{path.name}:{start}", "\n".join(lines))
            lines = []
    if lines:
        yield Document(f"{path.name}:{start}", "\n".join(lines))


def read_jsonl(path: Path, report: ReadReport) -> Iterator[Document]:
    for number, line in _lines(path, report):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusFormatError(f"{path}:{number}: not valid JSON ({e.msg}).") from e
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise CorpusFormatError(f"{path}:{number}: expected an object with a 'text' string.")
        doc_id = str(obj.get("id", f"{path.name}:{number}"))
        yield Document(doc_id, obj["text"])


def read_conllu(path: Path, report: ReadReport) -> Iterator[Document]:
    """Sentences of a CoNLL-U file; multiword-token ranges and empty nodes are skipped."""
    sent_id, text, words, upos, deprel, start = None, None, [], [], [], 0
    for number, line in [*_lines(path, report), (-1, "")]:
        if not line.strip():
            if words:
                doc_id = sent_id or f"{path.name}:{start}"
                yield Document(
                    doc_id, text or " ".join(words), tuple(words), tuple(upos), tuple(deprel)
                )
            sent_id, text, words, upos, deprel = None, None, [], [], []
            continue
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            if key.strip() == "sent_id":
                sent_id = value.strip()
            elif key.strip() == "text":
                text = value.strip()
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise CorpusFormatError(
                f"{path}:{number}: a CoNLL-U word line has 10 tab-separated columns, this one "
                f"has {len(cols)}."
            )
        if "-" in cols[0] or "." in cols[0]:
            continue  # multiword token range or empty node
        if not cols[0].isdigit():
            raise CorpusFormatError(f"{path}:{number}: word ID {cols[0]!r} is not a number.")
        if not words:
            start = number
        words.append(cols[1])
        upos.append(cols[3])
        deprel.append(cols[7])


READERS = {"text": read_text, "jsonl": read_jsonl, "conllu": read_conllu}


def read_corpus(path: str | Path, report: ReadReport | None = None) -> Iterator[Document]:
    """Stream every document of a corpus file or folder."""
    report = report if report is not None else ReadReport()
    for file in corpus_files(path):
        report.files += 1
        for doc in READERS[FORMATS[file.suffix]](file, report):
            report.documents += 1
            yield doc
