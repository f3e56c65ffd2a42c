"""The KV an engine actually frees, measured over a window.

The published ``kvDrainTokensPerS`` is a prediction: every running request's held KV over its
predicted remaining steps, summed. A request one step from its predicted end holding 3,000
tokens adds 100,000 tokens/s to it, a rate it keeps for one step only, so the sum overstates
what the engine frees over the seconds a queued request waits (docs/benchmarks.md, "After the
KV wait"). :class:`FreedMeter` measures instead: the KV that left the running set (finished,
aborted or preempted requests) over the last :data:`DRAIN_WINDOW_S`, from the successive views
the engine publishes anyway. The simulated engine, the vLLM adapter's state file and the cluster
simulator each hold one meter and pass it to
:func:`~sloserve_engine.router.snapshot.snapshot_from_view`.

:func:`~sloserve_engine.router.snapshot.reserved_kv_wait_s` is the wait that rate prices
(the ``kvWaitReserved`` router knob).
"""

from __future__ import annotations

from collections import deque

from ..policy.views import EngineSnapshot as EngineView

DRAIN_WINDOW_S = 2.0
"""Window (s) of :class:`FreedMeter`: the same argument as the arrival window
(:data:`~sloserve_engine.router.snapshot.ARRIVAL_WINDOW_S`): several finishes per engine at
the rates one engine serves, short against the seconds a queued request may wait. Fixed by
that argument before any run, not tuned."""


class FreedMeter:
    """KV tokens one engine freed per second over the last :data:`DRAIN_WINDOW_S`.

    State is bounded: the KV held per running request at the last view, and one entry per
    view in the window. KV freed between two views is counted at the later one, at what the
    request held at the earlier one (the growth of its last few steps is not counted: the
    rate is understated slightly, never overstated).
    """

    __slots__ = ("_events", "_held", "_sum")

    def __init__(self) -> None:
        self._held: dict[str, int] = {}
        self._events: deque[tuple[float, int]] = deque()
        self._sum = 0

    def observe(self, view: EngineView) -> float:
        """Take one view; the measured rate (tokens/s) as of it."""
        bs = view.block_size
        held = {r.request_id: r.blocks_held * bs for r in view.running}
        freed = sum(t for rid, t in self._held.items() if rid not in held)
        self._held = held
        if freed:
            self._events.append((view.now, freed))
            self._sum += freed
        while self._events and self._events[0][0] <= view.now - DRAIN_WINDOW_S:
            self._sum -= self._events.popleft()[1]
        return self._sum / DRAIN_WINDOW_S
