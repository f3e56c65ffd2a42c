"""SLO attainment of ended requests over a sliding time window.

Kept free of Prometheus and clocks so the same numbers come out of the
simulated engine, the vLLM engine core and the unit tests: callers pass each
request's verdict (:func:`sloserve_engine.contract.attainment.request_attainment`)
and ``now`` on whatever clock they run.

A request that did not finish is not a success: one the client abandoned
(``aborted``) or the engine failed (``error``) enters the window as a miss of
both targets, and requests still waiting for their first token past their
TTFT target count as misses already (else a window in which nothing finished
but everything waits would read as full attainment). Requests refused with a
4xx (``rejected``) are counted by the requests counter but never enter the
window: the caller alone decides whether they happen, so they must not move
the signal the autoscaler scales on.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from ..contract.attainment import Attainment


class Outcome(enum.StrEnum):
    """How a request ended: the ``outcome`` label of ``sloserve_requests_total``."""

    FINISHED = "finished"
    """Ran to its last token (attained or not, by its SLO)."""
    ABORTED = "aborted"
    """The client went away before the last token (an SLO miss)."""
    REJECTED = "rejected"
    """Refused with a 4xx before it was queued (not in the attainment window)."""
    ERROR = "error"
    """The engine failed it (an SLO miss)."""


def counts_as_miss(outcome: Outcome) -> bool:
    """Outcomes other than ``finished`` that enter the attainment window as misses."""
    return outcome in (Outcome.ABORTED, Outcome.ERROR)


def overdue_count(first_token_deadlines: Iterable[float], now: float) -> int:
    """Open requests without a first token whose TTFT deadline (arrival + target) has passed."""
    return sum(1 for deadline in first_token_deadlines if deadline < now)


@dataclass(frozen=True, slots=True)
class WindowRatios:
    """Attainment ratios over the window plus overdue open requests (counted as misses);
    all 1.0 when both are empty (nothing missed)."""

    ttft: float
    tbt: float
    both: float
    strict: float
    requests: int
    """The denominator: requests that ended in the window plus overdue open ones."""


class SlidingWindowAttainment:
    """Requests that finished in ``(now - window_s, now]``, with O(1) amortised updates."""

    def __init__(self, window_s: float = 60.0) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._entries: deque[tuple[float, Attainment]] = deque()
        self._ttft_ok = 0
        self._tbt_ok = 0
        self._both_ok = 0
        self._strict_ok = 0

    def add(self, finish_time: float, attainment: Attainment) -> None:
        """Record one ended request (end times must not go backwards)."""
        self._entries.append((finish_time, attainment))
        self._count(attainment, +1)

    def ratios(self, now: float, overdue: int = 0) -> WindowRatios:
        """Drop requests older than the window, then report what is left, with ``overdue``
        open requests (past their TTFT target without a first token) as misses."""
        horizon = now - self.window_s
        while self._entries and self._entries[0][0] <= horizon:
            _, old = self._entries.popleft()
            self._count(old, -1)
        n = len(self._entries) + overdue
        if n == 0:
            return WindowRatios(1.0, 1.0, 1.0, 1.0, 0)
        return WindowRatios(
            self._ttft_ok / n, self._tbt_ok / n, self._both_ok / n, self._strict_ok / n, n
        )

    def _count(self, a: Attainment, sign: int) -> None:
        self._ttft_ok += sign * a.ttft
        self._tbt_ok += sign * a.tbt
        self._both_ok += sign * a.both
        self._strict_ok += sign * a.strict
