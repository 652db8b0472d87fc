"""One reader and writer for the JSON manifest of every index folder.

Every read goes through :func:`read_manifest`, which refuses a missing manifest, one that is
not valid JSON, and one of another schema version, each with a one-line error saying what to
do. Writes are atomic (a temporary file, then a rename): a crash leaves the old manifest.
"""

from __future__ import annotations

import json
from pathlib import Path

from lmtt.errors import IndexFolderError
from lmtt.io import atomic_write


def write_manifest(path: Path, obj: dict) -> None:
    """Write a folder's JSON manifest atomically (a crash leaves the old one or none)."""
    atomic_write(path, json.dumps(obj, indent=2).encode("utf-8"))


def read_manifest(
    path: Path,
    version: int,
    error: type[IndexFolderError],
    what: str,
    command: str,
) -> dict:
    """A folder's JSON manifest, refusing a missing or unreadable one or another schema
    version. ``what`` names the folder kind ("a neuron index"), ``command`` the lmtt command
    that builds it; both go into the error messages."""
    folder = path.parent
    if not path.is_file():
        raise error(
            f"{folder} is not {what} (no {path.name}). Build one with "
            f"`{command} --corpus PATH --out DIR`."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(
            f"{path} is not valid JSON ({e}); the folder is damaged. Rebuild it with `{command}`."
        ) from e
    found = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if found != version:
        raise error(
            f"{folder} has index schema version {found}; this lmtt reads version "
            f"{version}. Rebuild it with `{command}`."
        )
    return manifest
