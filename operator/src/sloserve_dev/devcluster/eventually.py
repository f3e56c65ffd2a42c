"""Wait for a condition in an eventually-consistent cluster, failing with the last observation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None], what: str, timeout_s: float = 60.0, interval_s: float = 0.25
) -> T:
    """Return ``probe()``'s first truthy value; raise TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except Exception as exc:  # the last error is the most useful part of a timeout message
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not true after {timeout_s:.0f} s (last: {last!r})")
        time.sleep(interval_s)
