"""Fair turns at the model, and runs per visitor per minute.

:class:`ModelGate` hands out turns first come, first served, and lets a waiting caller show
how many are ahead of it ("waiting for the model (2 ahead)"). :class:`RunLimiter` counts each
visitor's runs in a sliding minute. Both are shared by every session of the process.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from lmtt.hosting import HostingError


class ModelGate:
    """First come, first served turns; ``on_wait(ahead)`` is called while waiting. A caller
    that leaves while waiting (its session stopped or reran) gives up its place."""

    def __init__(self):
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()  # the caller whose turn it is, then the waiting

    @property
    def waiting(self) -> int:
        """Callers holding or waiting for a turn."""
        with self._cond:
            return len(self._queue)

    @contextmanager
    def turn(self, on_wait: Callable[[int], None] = lambda ahead: None,
             poll: float = 0.25) -> Iterator[int]:  # fmt: skip
        """Wait for this caller's turn; yields how many were ahead when it joined."""
        me = object()
        with self._cond:
            self._queue.append(me)
            joined_ahead = len(self._queue) - 1
        try:
            while True:
                with self._cond:
                    ahead = self._queue.index(me)
                    if ahead == 0:
                        break
                on_wait(ahead)
                with self._cond:
                    if self._queue.index(me):
                        self._cond.wait(timeout=poll)
            yield joined_ahead
        finally:
            with self._cond:
                self._queue.remove(me)
                self._cond.notify_all()


class RunLimiter:
    """At most ``per_minute`` runs per visitor in any 60 seconds (no limit when None). A run
    is named by a token: asking again for a token already counted in the window (the same
    prompt's other views, say) costs nothing."""

    def __init__(self, per_minute: int | None, max_visitors: int = 10_000):
        self.per_minute = per_minute
        self._runs: dict[str, deque] = {}  # visitor -> (time, token), oldest first
        self._lock = threading.Lock()
        self._max_visitors = max_visitors

    def record(self, visitor: str, token: object = None, now: float | None = None) -> None:
        """Count the run ``token`` for ``visitor``, or refuse it with how long to wait."""
        if self.per_minute is None:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            runs = self._runs.setdefault(visitor, deque())
            while runs and now - runs[0][0] >= 60:
                runs.popleft()
            if token is not None and any(t == token for _, t in runs):
                return
            if len(runs) >= self.per_minute:
                wait = 60 - (now - runs[0][0])
                raise HostingError(
                    f"You have started {len(runs)} runs in the last minute, the limit on this "
                    f"server; wait {wait:.0f} s."
                )
            runs.append((now, token))
            if len(self._runs) > self._max_visitors:  # forget the longest idle visitor
                idle = min(self._runs, key=lambda v: self._runs[v][-1][0] if self._runs[v] else 0)
                del self._runs[idle]
