"""The adaptive TTFT margin (``ttftMarginLateShare``): the router's own feedback on its placements.

A fixed tight ``ttftMargin`` cuts the TTFT tail and sheds the expensive requests first at
the knee, but under bursts it refuses requests the engines would have served in time: it
cannot tell a queue the engines clear within the target from one they do not. The router
can, after the fact: every placement reaches its first token in time or late.

So the margin moves between ``ttftMargin`` (the floor) and 1: down by ``step × (1 − share)``
for each placed request that turns out late, up by ``step × share`` for each one in time.
It stands still when late placements are ``share`` of all placements (a stochastic-
approximation controller of the late share). A placement counts as late as soon as its
TTFT target passes without a first token, not when the late token finally comes (an
engine may push a hopeless request back by seconds), so the router learns within one
target of the placement. State: the margin, and the deadlines of placements still waiting
for their first token.
"""

from __future__ import annotations

import heapq

MARGIN_STEP = 1.0
"""Move per judged placement, times ``1 − share`` down and ``share`` up: at 1, one late
placement takes the margin from 1 down by ``1 − share`` and each placement in time lifts it
by ``share`` (at share 0.3: one late placement and it is at 0.3, three in time and it is
back at 1). Chosen on azure-conv from 0.05, 0.2, 0.5 and 1 (docs/benchmarks.md, 'An
adaptive margin')."""


def next_margin(margin: float, late: bool, floor: float, share: float) -> float:
    """The margin after one placement is judged (``late``: no first token by its TTFT target),
    kept within ``[floor, 1]``."""
    moved = margin - MARGIN_STEP * (1.0 - share) if late else margin + MARGIN_STEP * share
    return min(max(moved, floor), 1.0)


class AdaptiveMargin:
    """One router's margin: fixed at the knob (``share`` 0) or adapted from its placements."""

    def __init__(self, floor: float, share: float) -> None:
        self.floor = floor
        self.share = share
        self.margin = 1.0 if share > 0 else floor
        """Placements are judged with this ``ttftMargin`` now; adaptive, it starts at 1."""
        self._deadlines: dict[str, float] = {}
        self._due: list[tuple[float, str]] = []

    def configure(self, floor: float, share: float) -> None:
        """New knobs, live: adapting goes on from where the margin stands, kept within the new
        floor; switched off, the margin is the knob again."""
        self.floor, self.share = floor, share
        self.margin = min(max(self.margin, floor), 1.0) if share > 0 else floor
        if share <= 0:
            self._deadlines.clear()
            self._due.clear()

    def placed(self, request_id: str, deadline: float) -> None:
        """A placement stands; its first token is due by ``deadline``."""
        if self.share > 0:
            self._deadlines[request_id] = deadline
            heapq.heappush(self._due, (deadline, request_id))

    def first_token(self, request_id: str, now: float) -> None:
        deadline = self._deadlines.pop(request_id, None)
        if deadline is not None:
            self._judge(now > deadline)

    def forget(self, request_id: str) -> None:
        """The request ended without a first token (failed, aborted): no verdict on the margin."""
        self._deadlines.pop(request_id, None)

    def overdue(self, now: float) -> None:
        """Placements whose deadline passed without a first token are late, now."""
        while self._due and self._due[0][0] < now:
            _, request_id = heapq.heappop(self._due)
            if self._deadlines.pop(request_id, None) is not None:
                self._judge(True)

    def _judge(self, late: bool) -> None:
        self.margin = next_margin(self.margin, late, self.floor, self.share)
