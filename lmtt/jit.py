"""numba kernels whose compiled cache lives in a per-user folder, not the installed package.

numba caches next to the source file by default, i.e. inside site-packages, which may be
read-only or shared between users. :func:`njit` caches lmtt's kernels in ``NUMBA_CACHE_DIR``
when that is set, else in ``$XDG_CACHE_HOME/lmtt/numba`` (default ``~/.cache/lmtt/numba``),
without changing numba's settings for anyone else in the process.
"""

from __future__ import annotations

import os
from pathlib import Path

import numba


def cache_dir() -> Path:
    """Where lmtt's compiled kernels are cached."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lmtt" / "numba"


def njit(**options):
    """``numba.njit(cache=True, **options)`` with the cache in :func:`cache_dir`.

    numba picks a function's cache folder when it is decorated, so the folder is set for the
    decoration only and numba's global setting is restored at once.
    """

    def decorate(function):
        previous = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = str(cache_dir())
        try:
            return numba.njit(cache=True, **options)(function)
        finally:
            numba.config.CACHE_DIR = previous

    return decorate


prange = numba.prange
__all__ = ["cache_dir", "njit", "prange"]
