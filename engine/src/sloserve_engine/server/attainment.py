"""SLO attainment of finished requests over a sliding time window.

Kept free of Prometheus and clocks so the same numbers come out of the
simulated engine, the vLLM engine core and the unit tests: callers pass each
request's verdict (:func:`sloserve_engine.contract.attainment.request_attainment`)
and ``now`` on whatever clock they run.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..contract.attainment import Attainment


@dataclass(frozen=True, slots=True)
class WindowRatios:
    """Attainment ratios over the window; all 1.0 when the window is empty (nothing missed)."""

    ttft: float
    tbt: float
    both: float
    strict: float
    requests: int


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
        """Record one finished request (finish times must not go backwards)."""
        self._entries.append((finish_time, attainment))
        self._count(attainment, +1)

    def ratios(self, now: float) -> WindowRatios:
        """Drop requests older than the window, then report what is left."""
        horizon = now - self.window_s
        while self._entries and self._entries[0][0] <= horizon:
            _, old = self._entries.popleft()
            self._count(old, -1)
        n = len(self._entries)
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
