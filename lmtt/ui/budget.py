"""A cache bounded by bytes: one total budget, the least recently used entry goes first.

Streamlit's own caches are bounded by entry count, so a few long prompts could take all the
memory. :class:`ByteBudgetCache` charges each entry what it holds (``lmtt.memory.nbytes``)
and evicts the least recently used entries until the total fits the budget. It is shared by
every session of the process and thread-safe; a computation asked for by several sessions at
once runs once, the others wait for its result. Errors are not cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

from lmtt.memory import nbytes


class ByteBudgetCache:
    def __init__(self, budget_bytes: int):
        self.budget = int(budget_bytes)
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._inflight: dict[Hashable, Future] = {}
        self._lock = threading.Lock()
        self.total = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, or ``compute()``'s (cached when it fits the budget)."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
            future = self._inflight.get(key)
            owner = future is None
            if owner:
                future = self._inflight[key] = Future()
        if not owner:
            return future.result()
        try:
            value = compute()
        except BaseException as e:
            future.set_exception(e)
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)
        self._store(key, value, nbytes(value))
        future.set_result(value)
        return value

    def _store(self, key: Hashable, value: Any, size: int) -> None:
        with self._lock:
            if size > self.budget:
                return  # larger than the whole budget: returned, never kept
            self._entries[key] = (value, size)
            self.total += size
            while self.total > self.budget:
                _, (_, old) = self._entries.popitem(last=False)
                self.total -= old

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.total = 0
