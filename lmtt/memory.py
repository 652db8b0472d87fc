"""Memory: what this machine has available, and what an object holds.

:func:`available_memory` reads the kernel's estimate (``MemAvailable``) and, inside a container,
the cgroup limit, so that a job can refuse settings that cannot fit before it starts.
:func:`nbytes` adds up the tensors, arrays, strings and bytes an object holds (each storage
counted once), which is what the app's byte-bounded caches charge an entry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch


def available_memory() -> int | None:
    """Bytes of memory available to this process (None when the system does not say)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for limit, used in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            cap = Path(limit).read_text().strip()
            if cap.isdigit() and int(cap) < 2**60:
                found.append(int(cap) - int(Path(used).read_text().strip()))
        except (OSError, ValueError):
            pass
    return min(found) if found else None


def nbytes(obj, _seen: set | None = None) -> int:
    """Bytes held by ``obj``: tensors and arrays by their storage (shared storage counted once),
    strings and bytes by length, containers, dataclasses and plain objects by their contents."""
    seen = set() if _seen is None else _seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        key = ("storage", storage.data_ptr())
        if key in seen:
            return 0
        seen.add(key)
        return storage.nbytes()
    if isinstance(obj, np.ndarray):
        return obj.nbytes if obj.base is None else nbytes(obj.base, seen)
    if isinstance(getattr(obj, "nbytes", None), int):  # e.g. a pyarrow Table
        return obj.nbytes
    if isinstance(obj, str | bytes | bytearray):
        return sys.getsizeof(obj)
    if isinstance(obj, dict) or hasattr(obj, "items") and hasattr(obj, "keys"):
        return sum(nbytes(k, seen) + nbytes(v, seen) for k, v in obj.items())
    if isinstance(obj, list | tuple | set | frozenset):
        return sys.getsizeof(obj) + sum(nbytes(x, seen) for x in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = (getattr(obj, f.name) for f in dataclasses.fields(obj))
        return sum(nbytes(x, seen) for x in fields)
    if hasattr(obj, "__dict__"):
        return nbytes(vars(obj), seen)
    return sys.getsizeof(obj)


def release_free_memory() -> None:
    """Hand freed heap memory back to the system (glibc's ``malloc_trim``; a no-op
    elsewhere), so a server's resident size follows what it holds after a model run."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name).malloc_trim(0)
