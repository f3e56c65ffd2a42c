"""The keyed work queue: coalescing, one worker per key, delayed retries."""

from __future__ import annotations

import asyncio

from sloserve_operator.workqueue import WorkQueue


async def test_adds_coalesce_and_active_keys_requeue_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    key = await q.get()
    assert key == "a"
    q.add("a")  # while active: remembered, not queued twice
    q.add("a")
    assert len(q) == 1
    q.done("a")
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["b", "a"]


async def test_add_after_keeps_the_earliest_retry() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("k", 0.05)
    q.add_after("k", 5.0)  # later: ignored
    got = await asyncio.wait_for(q.get(), timeout=1.0)
    assert got == "k"


async def test_cancel_retry() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("k", 0.02)
    q.cancel_retry("k")
    await asyncio.sleep(0.05)
    assert len(q) == 0
