"""Frozen settings objects and the YAML configuration under ``configs/``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lmtt.errors import LmttError

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def config_dir() -> Path:
    """Folder holding ``models.yaml`` and friends (``LMTT_CONFIG_DIR`` overrides it)."""
    env = os.environ.get("LMTT_CONFIG_DIR")
    folder = Path(env) if env else REPO_DIR / "configs"
    if not folder.is_dir():
        raise LmttError(
            f"lmtt's configuration folder {folder} is missing. Install lmtt from its source "
            "checkout (`pip install -e .`) or set LMTT_CONFIG_DIR to a folder with models.yaml."
        )
    return folder


@dataclass(frozen=True)
class ModelEntry:
    """One model the app and CLI offer by name (``configs/models.yaml``)."""

    name: str
    source: str  # hub name or a folder; relative folders are relative to the repository
    description: str = ""
    needs_internet: bool = False

    def resolved_source(self) -> str:
        path = Path(self.source)
        if not path.is_absolute() and (REPO_DIR / path).exists():
            return str(REPO_DIR / path)
        return self.source


@dataclass(frozen=True)
class ModelCatalog:
    default: str
    models: tuple[ModelEntry, ...] = field(default_factory=tuple)

    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def get(self, name: str) -> ModelEntry | None:
        return next((m for m in self.models if m.name == name), None)


def load_model_catalog(path: Path | None = None) -> ModelCatalog:
    path = path or config_dir() / "models.yaml"
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f) or {}
    models = tuple(
        ModelEntry(
            name=str(m["name"]),
            source=str(m.get("source", m["name"])),
            description=str(m.get("description", "")),
            needs_internet=bool(m.get("needs_internet", False)),
        )
        for m in raw.get("models", [])
    )
    default = str(raw.get("default", models[0].name if models else ""))
    return ModelCatalog(default=default, models=models)


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model: ``device`` is cpu, cuda, cuda:N, mps or auto."""

    device: str = "auto"
    dtype: str = "float32"
