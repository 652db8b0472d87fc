"""Where lmtt's configuration files live (``configs/``) and the shared example prompts."""

from __future__ import annotations

import os
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


def example_prompts() -> list[str]:
    """The example prompts of ``configs/prompts.yaml``."""
    path = config_dir() / "prompts.yaml"
    return list(yaml.safe_load(path.read_text(encoding="utf-8"))["prompts"])
