"""Policy failures never take an engine down: stock fallbacks and rate-limited logging.

A policy that raises inside a step must not take the engine (and every request
in it) down. The vLLM scheduler falls back to stock vLLM's decision for that
call; :class:`GuardedPolicy` gives the simulated engine the same behaviour, and
turns a failed arrival into :class:`PolicyArrivalError` so that one request fails
with a clear error instead. A policy that fails on every step would otherwise
write hundreds of tracebacks per second, so :class:`PolicyErrorLog` logs each
distinct error (method, exception type, message) once, and new distinct
errors at most once per ``interval_s``. Pure apart from the logger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..contract.knobs import Knobs
from .base import Policy
from .ordering import StartDeadline
from .views import (
    ArrivalInfo,
    EngineSnapshot,
    FinishedInfo,
    Prediction,
    PreemptionMode,
    RequestView,
    StepPlan,
)
from .vllm_fcfs import VllmFcfsPolicy

DEFAULT_INTERVAL_S = 10.0
"""Least time between two log lines about newly seen policy errors."""
MAX_DISTINCT = 256
"""Distinct errors remembered; beyond this, errors are only rate-limited (bounded memory)."""


@dataclass(slots=True)
class PolicyErrorLog:
    """Decides which policy errors are worth a log line, and writes it."""

    logger: logging.Logger
    interval_s: float = DEFAULT_INTERVAL_S
    suppressed: int = 0
    """Errors not logged since the last line (repeats or over the rate limit)."""
    _seen: set[tuple[str, str, str]] = field(default_factory=set)
    _last_logged: float = float("-inf")

    def report(self, call: str, exc: Exception, now: float) -> bool:
        """Log ``exc`` raised by the policy's ``call`` unless seen before or over the limit."""
        key = (call, type(exc).__name__, str(exc))
        if key in self._seen or now - self._last_logged < self.interval_s:
            self.suppressed += 1
            return False
        if len(self._seen) < MAX_DISTINCT:
            self._seen.add(key)
        self.logger.error(
            "sloserve: policy %s() raised %s: %s; using stock vLLM's decision for this call "
            "(%d policy errors not logged since the last report)",
            call,
            type(exc).__name__,
            exc,
            self.suppressed,
            exc_info=exc,
        )
        self._last_logged = now
        self.suppressed = 0
        return True


STOCK = VllmFcfsPolicy()
"""Stock vLLM's decisions: what a failed policy call is replaced by."""

ErrorSink = Callable[[str, Exception], None]
"""Called with (policy method, exception) for every failed call."""


class PolicyArrivalError(RuntimeError):
    """The policy raised on one request's arrival; that request cannot be scheduled."""

    def __init__(self, call: str, exc: Exception) -> None:
        super().__init__(f"scheduling policy {call}() failed: {type(exc).__name__}: {exc}")
        self.call = call


class GuardedPolicy:
    """``inner`` with every failing call reported to ``on_error`` and replaced.

    Step-level calls (``plan``, ``can_admit``, ``preemption_mode``,
    ``on_finish``) fall back to stock vLLM's decision for that call, exactly as
    the vLLM scheduler does; ``on_arrival`` raises :class:`PolicyArrivalError`, so
    the caller fails that one request (nothing has been queued yet).
    """

    def __init__(self, inner: Policy, on_error: ErrorSink) -> None:
        self.inner = inner
        self.name = inner.name
        self.knobs = inner.knobs
        self._on_error = on_error

    def set_knobs(self, knobs: Knobs) -> None:
        self.inner.set_knobs(knobs)
        self.knobs = knobs

    def on_arrival(self, info: ArrivalInfo) -> Prediction:
        try:
            return self.inner.on_arrival(info)
        except Exception as exc:
            self._on_error("on_arrival", exc)
            raise PolicyArrivalError("on_arrival", exc) from exc

    def on_finish(self, info: FinishedInfo) -> None:
        try:
            self.inner.on_finish(info)
        except Exception as exc:
            self._on_error("on_finish", exc)

    def plan(self, snapshot: EngineSnapshot) -> StepPlan:
        try:
            return self.inner.plan(snapshot)
        except Exception as exc:
            self._on_error("plan", exc)
            return STOCK.plan(snapshot)

    def can_admit(
        self,
        free_blocks: int,
        total_blocks: int,
        block_size: int,
        running: Sequence[RequestView],
        candidate: RequestView,
        now: float,
    ) -> bool:
        try:
            return self.inner.can_admit(
                free_blocks, total_blocks, block_size, running, candidate, now
            )
        except Exception as exc:
            self._on_error("can_admit", exc)
            return STOCK.can_admit(free_blocks, total_blocks, block_size, running, candidate, now)

    def preemption_mode(self, victim: RequestView) -> PreemptionMode:
        try:
            return self.inner.preemption_mode(victim)
        except Exception as exc:
            self._on_error("preemption_mode", exc)
            return STOCK.preemption_mode(victim)

    def start_deadline(self, now: float) -> StartDeadline | None:
        try:
            return self.inner.start_deadline(now)
        except Exception as exc:
            self._on_error("start_deadline", exc)
            return STOCK.start_deadline(now)
