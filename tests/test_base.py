"""The base modules: numba's kernel cache folder, matplotlib left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lmtt

PACKAGE = Path(lmtt.__file__).parent


def run_python(code: str, env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], env=os.environ | env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_numba_caches_kernels_in_a_per_user_folder(tmp_path):
    """Compiled kernels go to $XDG_CACHE_HOME/lmtt/numba, never into the installed package,
    and numba's own setting is left as it was for other code in the process."""
    code = (
        "import numba, torch\n"
        "before = numba.config.CACHE_DIR\n"
        "from lmtt.flow.contributions import proximity\n"
        "from lmtt.index.neuron_topk import NeuronStats\n"
        "proximity(torch.ones(1, 4), torch.ones(1, 1, 2), torch.ones(1, 2, 4))\n"
        "NeuronStats.empty(1, 3).update(torch.ones(1, 2, 3))\n"
        "print(numba.config.CACHE_DIR == before)\n"
    )
    env = {"XDG_CACHE_HOME": str(tmp_path), "NUMBA_CACHE_DIR": ""}
    before = set(PACKAGE.rglob("*.nbi"))
    assert run_python(code, env).strip() == "True"
    cached = {p.name.split(".")[0] for p in (tmp_path / "lmtt" / "numba").rglob("*.nbi")}
    assert {"contributions", "neuron_topk"} <= cached
    assert set(PACKAGE.rglob("*.nbi")) == before  # nothing new inside the package


def test_importing_lmtt_leaves_matplotlib_alone(tmp_path):
    """A notebook keeps its backend: lmtt never selects one, and PNG/SVG exports still work."""
    code = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import sys, torch\n"
        "import lmtt.cli, lmtt.viz.static as static, lmtt.viz.diagrams\n"
        "fig = static.attention_diagram(torch.eye(3), ['a', 'b', 'c'], 't')\n"
        "png, svg = static.figure_png_svg(fig)\n"
        "assert png[:4] == b'\\x89PNG' and b'<svg' in svg[:400]\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n"
    )
    assert run_python(code, {}).split() == ["svg", "False"]
