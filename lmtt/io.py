"""Writing files safely: outputs checked before any work, atomic writes, disk errors as one line.

- :func:`check_output` proves, before a job starts, that an output file or folder can be
  written: the path is not the wrong kind of thing, and a probe file can be created in the
  nearest folder that exists (permission bits alone lie for root and read-only mounts).
- :func:`atomic_write` writes through a temporary file and a rename, so a crash or a full disk
  leaves the old file (or none), never half of one.
- :func:`disk_errors` turns an ``OSError`` from a write (read-only file system, no space left,
  permission denied) into a one-line :class:`OutputError` that says what to do.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lmtt.errors import LmttError


class OutputError(LmttError):
    """An output path that cannot be written (wrong kind, read-only, disk full)."""


def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path(".")


def check_output(path: str | Path, folder: bool, what: str = "--out") -> Path:
    """Refuse an output that cannot be written, before any work is done.

    ``folder``: the output is a folder (created if missing) rather than a file.
    """
    path = Path(path).expanduser()
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file; pass a folder (new, or one of lmtt's).")
    if not folder and path.is_dir():
        raise OutputError(f"{what} {path} is a folder; pass the path of a file to write.")
    base = _nearest_existing(path if folder else path.parent)
    if not base.is_dir():
        raise OutputError(f"{what} {path}: {base} is a file, so nothing can be written below it.")
    try:
        with tempfile.NamedTemporaryFile(dir=base, prefix=".lmtt-probe-"):
            pass
    except OSError as e:
        raise OutputError(
            f"Cannot write {what} {path}: {base} is not writable ({e.strerror}). "
            "Pass a location you can write to."
        ) from None
    return path


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


@contextmanager
def disk_errors(where: str | Path, resumable: bool = False) -> Iterator[None]:
    """Re-raise an ``OSError`` from the block as a one-line :class:`OutputError`."""
    try:
        yield
    except OSError as e:
        if e.errno in _DISK_FULL:
            fix = "Free some space"
        elif e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            fix = "Make it writable or pass another location"
        else:
            raise
        then = "; the same command resumes the job" if resumable else ""
        raise OutputError(f"Cannot write to {where}: {e.strerror}. {fix}{then}.") from None


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (the temporary file is
    removed if the write fails)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to (by a library that takes a path); renamed
    to ``path`` when the block succeeds, removed when it fails."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
