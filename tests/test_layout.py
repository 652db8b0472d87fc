"""The layout rules of DESIGN.md section 5, and the size rules of the code."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
WINGS = ("models", "flow", "attention", "causal", "index", "corpus", "viz", "ui", "cli")
BASE = ("errors", "config", "jit", "testing", "io", "memory", "hosting")


def lint_imports(cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_the_import_rules_hold():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _fixture_package(root: Path, imports: dict[str, str]) -> None:
    """A package named lmtt with every wing and base module, importing as ``imports`` says."""
    pkg = root / "lmtt"
    for wing in WINGS:
        (pkg / wing).mkdir(parents=True)
        (pkg / wing / "__init__.py").write_text("")
    for name in BASE:
        (pkg / f"{name}.py").write_text("")
    (pkg / "__init__.py").write_text("")
    for module, source in imports.items():
        (pkg / (module.replace(".", "/") + ".py")).write_text(source)


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("flow.graph", "import lmtt.attention\n", "Wings stack"),  # flow and attention
        ("models.load", "from lmtt.flow import graph\n", "Wings stack"),  # models imports a wing
        ("attention.qk", "import lmtt.viz\n", "Wings stack"),  # analysis imports a figure
        ("errors", "import lmtt.models\n", "The base modules import no wing"),
        ("flow.trace", "import transformer_lens\n", "Only models/ imports TransformerLens"),
        ("viz.charts", "import streamlit\n", "Only ui/ imports Streamlit"),
    ],
)
def test_a_violation_fails_the_check(tmp_path, module, source, broken):
    _fixture_package(tmp_path, {module: source, "models.fine": "import transformer_lens\n"})
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = os.environ | {"PYTHONPATH": str(tmp_path)}  # the fixture lmtt, not the real one
    done = lint_imports(tmp_path, env)
    assert done.returncode != 0
    assert "1 broken" in done.stdout, done.stdout[-3000:]
    assert f"{broken}" in done.stdout and "BROKEN" in done.stdout


def _sources() -> list[Path]:
    return [p for d in ("lmtt", "scripts") for p in sorted((ROOT / d).rglob("*.py"))]


def test_modules_and_functions_stay_small():
    """About 400 lines a module and 60 a function, outside the tests."""
    too_long = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(ROOT)
        if len(text.splitlines()) > 400:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    too_long.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, "\n".join(too_long)


def test_every_package_folder_has_an_init():
    """Folders without __init__.py would be left out of an installed wheel."""
    missing = [
        str(d.relative_to(ROOT))
        for d in (ROOT / "lmtt").rglob("*")
        if d.is_dir() and d.name != "__pycache__" and "assets" not in d.parts
        and not (d / "__init__.py").exists()
    ]  # fmt: skip
    assert not missing
