"""The app's shared machinery: the byte-bounded cache, fair turns at the model, run limits."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from lmtt.hosting import HostingError
from lmtt.memory import nbytes
from lmtt.ui.budget import ByteBudgetCache
from lmtt.ui.gate import ModelGate, RunLimiter


def test_nbytes_counts_storage_once():
    t = torch.zeros(1000)  # 4000 bytes
    assert nbytes(t) == 4000
    assert nbytes((t, t[:10], {"a": t})) < 4000 + 1000  # views share the storage
    assert nbytes([torch.zeros(10), torch.zeros(20)]) >= 120


def test_cache_evicts_least_recently_used_by_bytes():
    cache = ByteBudgetCache(10_000)
    for i in range(4):
        cache.get_or_compute(i, lambda: torch.zeros(500))  # 2000 bytes each
    cache.get_or_compute(0, lambda: pytest.fail("0 is cached"))  # 0 becomes most recent
    cache.get_or_compute(4, lambda: torch.zeros(1250))  # 5000 bytes: 1 and 2 must go
    assert 0 in cache and 4 in cache and 3 in cache and 1 not in cache and 2 not in cache
    assert cache.total <= cache.budget
    big = cache.get_or_compute("big", lambda: torch.zeros(10_000))  # over the whole budget
    assert big.numel() == 10_000 and "big" not in cache


def test_cache_computes_once_for_concurrent_callers_and_never_caches_errors():
    cache, calls = ByteBudgetCache(10**6), []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return torch.ones(3)

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_compute("k", slow)))
               for _ in range(5)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 5 and all(r is results[0] for r in results)

    def fail():
        raise ValueError("bad")

    for _ in range(2):
        with pytest.raises(ValueError):
            cache.get_or_compute("e", fail)
    assert "e" not in cache


def test_gate_serves_in_arrival_order_and_reports_who_is_ahead():
    gate, order, seen = ModelGate(), [], {}
    hold = threading.Event()

    def first():
        with gate.turn():
            hold.wait(5)
            order.append("first")

    def later(name):
        waits = []
        with gate.turn(waits.append, poll=0.01) as ahead:
            order.append(name)
        seen[name] = (ahead, waits)

    t0 = threading.Thread(target=first)
    t0.start()
    time.sleep(0.05)
    threads = []
    for name in ("second", "third"):
        threads.append(threading.Thread(target=later, args=(name,)))
        threads[-1].start()
        time.sleep(0.05)
    assert gate.waiting == 3
    hold.set()
    for t in (t0, *threads):
        t.join()
    assert order == ["first", "second", "third"]
    assert seen["second"][0] == 1 and seen["third"][0] == 2
    assert 2 in seen["third"][1] and set(seen["third"][1]) <= {1, 2}
    assert gate.waiting == 0


def test_a_caller_leaving_the_queue_gives_up_its_place():
    gate, hold = ModelGate(), threading.Event()

    def holder():
        with gate.turn():
            hold.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    time.sleep(0.05)

    def stop(ahead):
        raise RuntimeError("the session stopped")

    with pytest.raises(RuntimeError), gate.turn(stop):
        pass
    hold.set()
    t.join()
    with gate.turn() as ahead:  # nobody is stuck in front
        assert ahead == 0


def test_run_limiter_slides_over_a_minute():
    limiter = RunLimiter(2)
    limiter.record("a", "p1", now=0)
    limiter.record("a", "p2", now=10)
    limiter.record("a", "p1", now=11)  # the same run again: free
    limiter.record("b", "p3", now=10)  # visitors are counted apart
    with pytest.raises(HostingError, match="wait 50 s"):
        limiter.record("a", "p3", now=10)
    limiter.record("a", "p3", now=60.5)  # the first run left the window
    RunLimiter(None).record("a")
