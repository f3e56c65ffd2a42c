"""Rate-limited logging of policy failures inside the engine core.

A policy that raises inside ``schedule()`` must not take the engine core (and
every request in it) down: the scheduler falls back to stock vLLM's decision
for that call and reports the error here. A policy that fails on every step
would otherwise write hundreds of tracebacks per second, so each distinct error
(method, exception type, message) is logged once, and new distinct errors at
most once per ``interval_s``. Pure apart from the logger.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

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
