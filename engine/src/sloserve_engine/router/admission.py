"""Admission: place now, hold in the bounded per-service queue, or reject at once.

The honest form of "hopeless ageing": a request that no engine can serve within
its TTFT target gets an immediate 429 with ``Retry-After`` instead of waiting in
an engine queue it can only leave late, taking KV and prefill time from requests
that can still make it. A request that some engine could serve in time, but
whose KV does not fit anywhere yet (every candidate collides), waits in the
router's queue and is placed on fresher state, as Dynamo's router queue does.

Lower SLO classes are shed first: the queue admits a more important request by
evicting the least important, newest one, and releases requests most important
first. Pure apart from the queue object, which the host serialises.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from .placement import Candidate


class Action(StrEnum):
    PLACE = "place"
    HOLD = "hold"
    REJECT = "reject"


class Reason(StrEnum):
    """Why a request was not placed (a bounded label set for metrics)."""

    NO_REPLICA = "no_replica"
    """No engine is reachable (503)."""
    SLO_INFEASIBLE = "slo_infeasible"
    """No engine can reach the first token before the TTFT target (429)."""
    QUEUE_FULL = "queue_full"
    """The queue is full of requests at least as important (429)."""
    SHED = "shed"
    """Evicted from the queue by a more important request (429)."""
    TIMEOUT = "timeout"
    """Held longer than ``queueTimeoutS`` (429)."""
    COLD_START = "cold_start"
    """Held because no engine can take requests (scaled to zero, waking, all restarting); 503
    after ``coldStartTimeoutS``."""
    KV_WAIT = "kv_wait"
    """Held: some engine can meet the TTFT but none has the KV yet."""
    SHUTDOWN = "shutdown"
    """Held when this router was told to stop (503: another router replica can take it)."""


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    engine_id: str | None = None
    reason: Reason | None = None
    retry_after_s: float | None = None
    """For rejections: when a retry may succeed (whole seconds, >= 1, for ``Retry-After``)."""
    predicted_ttft_s: float | None = None
    """For placements: the chosen engine's predicted TTFT (to measure the prediction)."""


def retry_after(seconds: float) -> float:
    """``Retry-After`` is whole seconds; never 0, so clients do not retry in a hot loop."""
    if not math.isfinite(seconds):
        return 60.0
    return float(min(max(math.ceil(seconds), 1), 60))


def decide(
    candidates: Sequence[Candidate],
    ttft_budget_s: float,
    admission: bool,
    queue_has_room: bool,
    waking: bool = False,
) -> Decision:
    """Place, hold or reject one request given every engine judged for it (best first).

    ``ttft_budget_s`` is the TTFT target minus the time already waited. ``waking``: engines
    are expected to appear (scale to zero), so a request without candidates waits for the
    first one instead of getting 503 at once.
    """
    if not candidates:
        if waking and queue_has_room:
            return Decision(Action.HOLD, reason=Reason.COLD_START)
        return Decision(Action.REJECT, reason=Reason.NO_REPLICA, retry_after_s=1.0)
    if not admission:
        best = candidates[0]
        return Decision(Action.PLACE, best.engine_id, predicted_ttft_s=best.predicted_ttft_s)
    for c in candidates:
        if c.feasible:
            return Decision(Action.PLACE, c.engine_id, predicted_ttft_s=c.predicted_ttft_s)
    soonest = min(c.predicted_ttft_s for c in candidates)
    if not any(c.ttft_ok for c in candidates):
        return Decision(
            Action.REJECT,
            reason=Reason.SLO_INFEASIBLE,
            retry_after_s=retry_after(soonest - max(ttft_budget_s, 0.0)),
        )
    if not queue_has_room:
        return Decision(Action.REJECT, reason=Reason.QUEUE_FULL, retry_after_s=retry_after(soonest))
    return Decision(Action.HOLD, reason=Reason.KV_WAIT)


@dataclass(order=True, slots=True)
class _Entry:
    rank: int
    seq: int
    request_id: str = field(compare=False)
    enqueued_at: float = field(compare=False)
    timeout_s: float | None = field(compare=False, default=None)


class ServiceQueue:
    """Bounded hold queue of one service: most important class first, FIFO within a class."""

    def __init__(self, limit: int, timeout_s: float) -> None:
        if limit < 0 or timeout_s <= 0:
            raise ValueError("limit must be >= 0 and timeout_s > 0")
        self.limit = limit
        self.timeout_s = timeout_s
        self._heap: list[_Entry] = []
        self._live: dict[str, _Entry] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._live

    def has_room(self, rank: int) -> bool:
        """Room for a request of class ``rank``, counting what it could shed."""
        if len(self._live) < self.limit:
            return True
        return any(e.rank > rank for e in self._live.values())

    def push(
        self, request_id: str, rank: int, now: float, timeout_s: float | None = None
    ) -> str | None:
        """Hold a request; returns the id it shed (lower class) if the queue was full.
        ``timeout_s`` replaces the queue's timeout for this request (cold starts).

        Raises ``ValueError`` if there is no room (call :meth:`has_room` first) or the id
        is already held.
        """
        if request_id in self._live:
            raise ValueError(f"request {request_id!r} is already queued")
        shed: str | None = None
        if len(self._live) >= self.limit:
            victim = max(self._live.values(), key=lambda e: (e.rank, e.seq), default=None)
            if victim is None or victim.rank <= rank:
                raise ValueError("queue is full of requests at least as important")
            del self._live[victim.request_id]
            shed = victim.request_id
        entry = _Entry(rank, next(self._seq), request_id, now, timeout_s)
        self._live[request_id] = entry
        heapq.heappush(self._heap, entry)
        return shed

    def remove(self, request_id: str) -> bool:
        """Take a request out (placed, rejected or aborted); lazy in the heap."""
        return self._live.pop(request_id, None) is not None

    def in_order(self) -> list[str]:
        """Held requests, most important first (the order to retry placement)."""
        self._heap = [e for e in self._heap if self._live.get(e.request_id) is e]
        heapq.heapify(self._heap)
        return [e.request_id for e in sorted(self._heap)]

    def expired(self, now: float) -> list[str]:
        """Remove and return the requests held longer than their (or the queue's) timeout."""
        out = [
            rid
            for rid, e in self._live.items()
            if now - e.enqueued_at >= (self.timeout_s if e.timeout_s is None else e.timeout_s)
        ]
        for rid in out:
            del self._live[rid]
        return out
