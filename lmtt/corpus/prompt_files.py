"""Prompt files for batch jobs: ``.txt`` (one prompt a line), or ``.jsonl`` / ``.csv`` with a
``prompt`` field and optional ``target``, ``foil`` and ``counterfactual`` fields."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from lmtt.errors import LmttError

SUFFIXES = (".txt", ".jsonl", ".csv")
FIELDS = ("prompt", "target", "foil", "counterfactual")


class PromptFileError(LmttError):
    """A prompt file cannot be read."""


@dataclass(frozen=True)
class PromptRow:
    """One prompt of a batch; ``target``/``foil`` are tokens (strings), "" when not given."""

    prompt: str
    target: str = ""
    foil: str = ""
    counterfactual: str = ""


def file_fingerprint(path: Path) -> str:
    """The SHA-256 of the file's bytes (a resumed job checks it)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _row(fields: dict, where: str) -> PromptRow:
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptFileError(f"{where} has no prompt: give each row a non-empty 'prompt'.")
    extra = {k: fields.get(k) or "" for k in FIELDS[1:]}
    bad = [k for k, v in extra.items() if not isinstance(v, str)]
    if bad:
        raise PromptFileError(f"{where}: the field {bad[0]!r} must be text.")
    return PromptRow(prompt, **extra)


def read_prompt_file(path: str | Path) -> list[PromptRow]:
    """Every row of a prompt file, in order (blank lines of a .txt file skipped)."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise PromptFileError(f"{path} is not a prompt file: use {', '.join(SUFFIXES)}.")
    if not path.is_file():
        raise PromptFileError(f"{path} is not a file: pass a prompt file ({', '.join(SUFFIXES)}).")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PromptFileError(
            f"{path} is not UTF-8 text (byte {e.start}); save it as UTF-8."
        ) from None
    # lines end at \n (or \r\n) only: a prompt may hold other line separators (U+2028, ...)
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if path.suffix == ".txt":
        rows = [PromptRow(line) for line in lines if line.strip()]
    elif path.suffix == ".jsonl":
        rows = [_json_row(line, f"{path}:{n}") for n, line in enumerate(lines, 1)
                if line.strip()]  # fmt: skip
    else:
        rows = _csv_rows(text, path)
    if not rows:
        raise PromptFileError(f"{path} holds no prompt.")
    return rows


def _csv_rows(text: str, path: Path) -> list[PromptRow]:
    """A CSV file's rows; a quoted field may span lines (its newlines kept)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if "prompt" not in (reader.fieldnames or ()):
        raise PromptFileError(f"{path} has no 'prompt' column: name the first row's columns.")
    try:
        return [_row(r, f"{path}:{reader.line_num}") for r in reader]
    except csv.Error as e:
        raise PromptFileError(f"{path}:{reader.line_num} is not valid CSV ({e}).") from None


def _json_row(line: str, where: str) -> PromptRow:
    try:
        fields = json.loads(line)
    except json.JSONDecodeError as e:
        raise PromptFileError(f"{where} is not valid JSON ({e.msg}).") from None
    if not isinstance(fields, dict):
        raise PromptFileError(f"{where} is not a JSON object with a 'prompt' field.")
    return _row(fields, where)
