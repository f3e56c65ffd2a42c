"""THE SLO attainment rule: the engine's metrics, the simulator, ``bench gpu`` and every
report judge a request with :func:`request_attainment` and nothing else.

* **Standard**: time to first token ≤ the SLO's TTFT, and mean time per output
  token after the first ≤ its TBT (the definition of the GPU baseline; a
  one-token answer has no inter-token time and meets TBT by definition).
* **Strict**: standard, and the longest gap between two of its tokens ≤ the
  stall bound. The mean hides a stream that froze for seconds and then caught
  up (a 0.2 s prefill step, a preemption); strict does not.

A request that never produced its last token (rejected, aborted, timed out, or
still running when a benchmark ends) attains nothing: :data:`MISSED`. Ratios
are always over *submitted* requests, so shedding load cannot raise them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

STALL_BOUND_MS_DEFAULT = 200.0
"""Default stall bound (ms): about one 8k-token prefill step of an 8B model on an H200, the
longest freeze a chat user reads as a hiccup rather than a hang. The knob ``stallBoundMs``
overrides it per engine."""


class SLOLike(Protocol):
    """Any SLO with the two targets in seconds (:class:`.slo.SLO`, or a test's stand-in)."""

    @property
    def ttft_s(self) -> float: ...

    @property
    def tbt_s(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Attainment:
    """Which parts of its SLO one request met."""

    ttft: bool
    tbt: bool
    """Mean time per output token after the first within the TBT target."""
    steady: bool = True
    """Longest gap between two tokens within the stall bound."""

    @property
    def both(self) -> bool:
        """The standard rule: TTFT and mean TBT."""
        return self.ttft and self.tbt

    @property
    def strict(self) -> bool:
        """The standard rule and no stall."""
        return self.ttft and self.tbt and self.steady


MISSED = Attainment(ttft=False, tbt=False, steady=False)
"""What a request that did not finish (rejected, aborted, timed out, cut off) attains."""


def request_attainment(
    slo: SLOLike,
    arrival_time: float,
    first_token_time: float,
    finish_time: float,
    output_tokens: int,
    max_gap_s: float,
    stall_bound_s: float = STALL_BOUND_MS_DEFAULT / 1e3,
) -> Attainment:
    """Judge one finished request (all times on one clock, seconds)."""
    ttft = first_token_time - arrival_time
    mean_tbt = (finish_time - first_token_time) / (output_tokens - 1) if output_tokens > 1 else 0.0
    return Attainment(
        ttft=ttft <= slo.ttft_s, tbt=mean_tbt <= slo.tbt_s, steady=max_gap_s <= stall_bound_s
    )


@dataclass(frozen=True, slots=True)
class Ratios:
    """Attainment over a set of submitted requests (``nan`` when the set is empty)."""

    standard: float
    strict: float
    requests: int


def ratios(verdicts: Iterable[Attainment]) -> Ratios:
    """Shares of ``verdicts`` (one per submitted request, :data:`MISSED` for unfinished)."""
    n = standard = strict = 0
    for v in verdicts:
        n += 1
        standard += v.both
        strict += v.strict
    if n == 0:
        return Ratios(float("nan"), float("nan"), 0)
    return Ratios(standard / n, strict / n, n)
