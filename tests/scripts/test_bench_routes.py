"""scripts/bench_routes.py runs end to end on a tiny shape (the GPU and GPT-2-small runs are
the same code with bigger numbers) and reports every ratio against the plain forward."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_routes_tiny(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_routes.py"), "--shape", "tiny",
           "--families", "gpt2", "--lengths", "48", "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(out.read_text())["rows"][0]
    assert row["T"] == 48 and row["hf_cpu_s"] > 0
    for key in ("trace_over_hf", "trace_and_routes_over_hf", "full_graph_over_hf"):
        assert row[key] > 0
    assert "| gpt2 | 48 |" in done.stdout
