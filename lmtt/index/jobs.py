"""What every corpus job shares: one lock per output folder and the corpus fingerprint.

- :class:`FolderLock`: a second job on the same folder refuses, naming the holder's pid and
  start time. The lock is an ``flock`` on ``.lmtt-lock``, which the operating system releases
  when its process dies, so a stale lock from a dead process is simply taken over.
- :func:`corpus_files_fingerprint` (file list and sizes, cheap, checked before any work) and
  :class:`HashingReader` (a content hash of what was read, checked at every resume), so a job
  resumed after the corpus changed refuses and says why instead of mixing two texts.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lmtt.corpus.readers import Document, corpus_files
from lmtt.errors import LmttError

LOCK = ".lmtt-lock"


class FolderBusyError(LmttError):
    """Another job holds the folder's lock."""


class CorpusChangedError(LmttError):
    """The corpus differs from the one a job started on."""


class FolderLock:
    """Hold ``folder/.lmtt-lock`` for the duration of a ``with`` block."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise FolderBusyError(
                    f"{self.path.parent} is in use by another lmtt job ({holder}). Wait for "
                    "it to finish, or pass another --out folder."
                ) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder removed that file as we opened it: lock the new one
        os.ftruncate(fd, 0)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
        os.write(fd, json.dumps(me).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (ValueError, KeyError, OSError):
        return "a process that is starting up"


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


STAGING = ".partial"  # where a job that is not resumable writes before it publishes


def is_empty(folder: Path) -> bool:
    """True for a folder holding nothing but (perhaps) a lock and a dead job's staging folder."""
    return all(p.name in (LOCK, STAGING) for p in folder.iterdir())


@contextmanager
def fresh_output(folder: Path, manifest: str, error: type[LmttError] = LmttError):
    """Stage the output of a job that is not resumable: the job writes into the staging folder
    this yields; when it succeeds every file moves into ``folder``, the ``manifest`` last, so a
    folder with a manifest is always whole. ``folder`` must be new or empty and is locked
    meanwhile. Whatever happens, no partial output is left behind (a job killed outright
    leaves only its staging folder, which the next run clears)."""
    refusal = f"{folder} is not empty: pass a new or empty --out folder."
    if folder.exists() and not is_empty(folder):
        raise error(refusal)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / STAGING
    try:
        with FolderLock(folder):
            if not is_empty(folder):  # another job got there first
                raise error(refusal)
            shutil.rmtree(staging, ignore_errors=True)  # a dead job's leftovers
            staging.mkdir()
            try:
                yield staging
                files = sorted(staging.iterdir(), key=lambda p: p.name == manifest)
                for path in files:
                    os.replace(path, folder / path.name)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise


def corpus_files_fingerprint(corpus: str | Path) -> list[list]:
    """[[relative path, size in bytes], ...] of every corpus file, in reading order."""
    root = Path(corpus)
    files = corpus_files(root)
    base = root if root.is_dir() else root.parent
    return [[str(f.relative_to(base)), f.stat().st_size] for f in files]


def check_same_files(corpus: str | Path, recorded: list | None, folder: Path) -> None:
    """Refuse a resume when the corpus's files or sizes differ from those recorded."""
    if recorded is None:
        return
    now = corpus_files_fingerprint(corpus)
    if now != recorded:
        before, after = {f: s for f, s in recorded}, {f: s for f, s in now}
        changed = sorted(
            f for f in set(before) | set(after) if before.get(f) != after.get(f)
        )  # fmt: skip
        raise CorpusChangedError(
            f"The corpus changed since the job in {folder} started (files or sizes differ: "
            f"{', '.join(changed[:5])}). Restore the corpus, or start again in a new --out."
        )


class HashingReader:
    """Documents passed through unchanged, with a running hash of everything read."""

    def __init__(self, docs: Iterable[Document]):
        self._docs = iter(docs)
        self._hash = hashlib.blake2b(digest_size=16)

    def __iter__(self) -> Iterator[Document]:
        for doc in self._docs:
            for part in (doc.doc_id, doc.text, *(doc.words or ()), *(doc.upos or ())):
                self._hash.update(part.encode("utf-8", "surrogatepass") + b"\0")
            yield doc

    def digest(self) -> str:
        """The hash of the documents read so far."""
        return self._hash.copy().hexdigest()
