"""Hosted mode: what an lmtt app open to strangers allows, from a settings file and variables.

``streamlit run app.py`` on one's own machine is *local mode*: any model, folder or hub name,
any corpus or index path, no caps. Setting ``LMTT_MODE=hosted`` (or ``mode: hosted`` in the
file named by ``LMTT_SETTINGS``) turns on *hosted mode*:

- models only from an allow-list (by default the catalog); no free-form folders or hub names;
- corpora and indexes only from the allow-listed data folders, picked from a list;
- caps on prompt characters (before tokenizing) and tokens, upload bytes, and runs per
  visitor per minute;
- refusals that say the same thing whatever was asked for, so they never reveal whether a
  path exists on the server.

Both modes bound the app's caches by bytes (``cache_mb``). Every setting can be given in the
YAML file or as an environment variable (which wins): ``LMTT_MODELS`` (comma-separated),
``LMTT_DATA_FOLDERS`` (separated by ``:``), ``LMTT_MAX_PROMPT_CHARS``,
``LMTT_MAX_PROMPT_TOKENS``, ``LMTT_MAX_UPLOAD_BYTES``, ``LMTT_RUNS_PER_MINUTE``,
``LMTT_CACHE_MB``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

import yaml

from lmtt.errors import LmttError

CORPUS_SUFFIXES = (".txt", ".jsonl", ".conllu")
_HOSTED_DEFAULTS = dict(
    max_prompt_chars=4000, max_prompt_tokens=256, max_upload_bytes=1_000_000,
    runs_per_minute=12, cache_mb=512.0,
)  # fmt: skip
_SCAN_LIMIT = 2000  # entries looked at when listing a data folder


class HostingError(LmttError):
    """A request hosted mode refuses (or a settings file that cannot be read)."""


@dataclass(frozen=True)
class HostSettings:
    mode: str = "local"  # "local" or "hosted"
    models: tuple[str, ...] | None = None  # hosted allow-list (None: the catalog's names)
    data_folders: tuple[Path, ...] = ()  # where offered corpora and indexes live
    max_prompt_chars: int | None = None
    max_prompt_tokens: int | None = None
    max_upload_bytes: int | None = None
    runs_per_minute: int | None = None
    cache_mb: float = 4096.0  # local: a 4,000-token trace of a GPT-2-small model is 2.2 GB

    @property
    def hosted(self) -> bool:
        return self.mode == "hosted"

    @property
    def cache_bytes(self) -> int:
        return int(self.cache_mb * 2**20)

    def check_model(self, spec: str, offered: list[str]) -> None:
        """In hosted mode, refuse any model not offered (the same words for every one)."""
        if self.hosted and spec not in offered:
            raise HostingError(
                f"This server offers only these models: {', '.join(offered)}. Pick one of them."
            )

    def check_prompt(self, text: str) -> None:
        """Refuse a prompt over the character cap, before it is tokenized."""
        cap = self.max_prompt_chars
        if cap is not None and len(text) > cap:
            raise HostingError(
                f"The prompt is {len(text):,} characters; this server takes at most {cap:,}. "
                "Shorten it."
            )

    def check_tokens(self, n: int) -> None:
        cap = self.max_prompt_tokens
        if cap is not None and n > cap:
            raise HostingError(
                f"The prompt is {n:,} tokens; this server takes at most {cap:,}. Shorten it."
            )

    def check_upload(self, size: int) -> None:
        cap = self.max_upload_bytes
        if cap is not None and size > cap:
            raise HostingError(
                f"The file is {size:,} bytes; this server takes uploads of at most {cap:,} bytes."
            )

    def offered_corpora(self) -> list[Path]:
        """Corpus files and folders of corpus files in the data folders."""
        return [p for p in _entries(self.data_folders) if _is_corpus(p)]

    def offered_indexes(self, manifest: str) -> list[Path]:
        """Index folders (holding ``manifest``) in the data folders."""
        return [p for p in _entries(self.data_folders) if (p / manifest).is_file()]

    def check_data_path(self, path: str | Path, offered: list[Path]) -> Path:
        """In hosted mode, a corpus or index path must be one of those offered. The refusal
        says the same words whether or not the path exists."""
        path = Path(path)
        if not self.hosted:
            return path
        resolved = {p.resolve() for p in offered}
        try:
            if path.resolve() in resolved:
                return path
        except (OSError, RuntimeError):
            pass
        raise HostingError(
            "This server reads corpora and indexes only from the ones it offers: pick one "
            "from the list."
        )


def _entries(folders: tuple[Path, ...]) -> list[Path]:
    """Each data folder, its children and grandchildren (at most _SCAN_LIMIT), sorted."""
    found: list[Path] = []
    for folder in folders:
        level = [folder]
        for _ in range(3):
            found += level
            if len(found) > _SCAN_LIMIT:
                return sorted(found[:_SCAN_LIMIT])
            level = [c for p in level if p.is_dir() for c in sorted(p.iterdir())]
    return sorted(found)


def _is_corpus(path: Path) -> bool:
    if path.is_file():
        return path.suffix in CORPUS_SUFFIXES
    return path.is_dir() and any(c.suffix in CORPUS_SUFFIXES for c in path.iterdir())


_ENV = {
    "mode": "LMTT_MODE",
    "models": "LMTT_MODELS",
    "data_folders": "LMTT_DATA_FOLDERS",
    "max_prompt_chars": "LMTT_MAX_PROMPT_CHARS",
    "max_prompt_tokens": "LMTT_MAX_PROMPT_TOKENS",
    "max_upload_bytes": "LMTT_MAX_UPLOAD_BYTES",
    "runs_per_minute": "LMTT_RUNS_PER_MINUTE",
    "cache_mb": "LMTT_CACHE_MB",
}


def load_host_settings(env: dict | None = None) -> HostSettings:
    """The settings from ``LMTT_SETTINGS`` (a YAML file) and the environment (which wins)."""
    env = os.environ if env is None else env
    raw: dict = {}
    if env.get("LMTT_SETTINGS"):
        path = Path(env["LMTT_SETTINGS"])
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise HostingError(f"Cannot read the settings file {path}: {e}") from None
        if not isinstance(raw, dict):
            raise HostingError(f"The settings file {path} must be a mapping of settings.")
    raw |= {key: env[var] for key, var in _ENV.items() if env.get(var)}
    return _parse(raw)


def _parse(raw: dict) -> HostSettings:
    known = {f.name for f in fields(HostSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise HostingError(f"Unknown settings {unknown}; known: {sorted(known)}.")
    mode = str(raw.get("mode", "local"))
    if mode not in ("local", "hosted"):
        raise HostingError(f"mode must be 'local' or 'hosted', not {mode!r}.")
    base = replace(HostSettings(), **_HOSTED_DEFAULTS) if mode == "hosted" else HostSettings()
    values: dict = {"mode": mode}
    if raw.get("models") is not None:
        values["models"] = tuple(_names(raw["models"]))
    if raw.get("data_folders") is not None:
        values["data_folders"] = tuple(Path(p).expanduser() for p in _paths(raw["data_folders"]))
    for key in ("max_prompt_chars", "max_prompt_tokens", "max_upload_bytes", "runs_per_minute"):
        if key in raw:
            values[key] = _positive(key, raw[key], int)
    if "cache_mb" in raw:
        values["cache_mb"] = _positive("cache_mb", raw["cache_mb"], float)
    return replace(base, **values)


def _names(value) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(x).strip() for x in items if str(x).strip()]


def _paths(value) -> list[str]:
    items = value.split(os.pathsep) if isinstance(value, str) else list(value)
    return [str(x) for x in items if str(x).strip()]


def _positive(key: str, value, kind):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise HostingError(f"{key} must be a positive number, not {value!r}.") from None
    if not number > 0 or number != number or number == float("inf"):
        raise HostingError(f"{key} must be a positive number, not {value!r}.")
    return number
