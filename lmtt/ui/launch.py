"""Start the app as a real server (``streamlit run app.py`` on 127.0.0.1), for the browser
tests and the load-test script, and read its memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lmtt.config import REPO_DIR
from lmtt.errors import LmttError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_server(
    env: dict | None = None, timeout: float = 90, script: Path | None = None
) -> Iterator[tuple[str, int]]:
    """(URL, server pid) of a fresh app server with ``env`` added to the environment
    (``script``: another Streamlit script than lmtt's app.py, e.g. a benchmark's floor)."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(script or REPO_DIR / "app.py"),
           "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port",
           str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType",
           "none"]  # fmt: skip
    # Two malloc arenas: each session's thread otherwise keeps its own, and the knockout and
    # gradient passes of the routes leave them fragmented (peak 2.3 GB instead of 1.4 GB over
    # 100 prompts of the load test).
    full_env = {"MALLOC_ARENA_MAX": "2", **os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, timeout)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_healthy(url: str, proc, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise LmttError(f"the app did not start: {proc.stdout.read().decode()[-2000:]}")


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident, peak resident) memory of a process in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
