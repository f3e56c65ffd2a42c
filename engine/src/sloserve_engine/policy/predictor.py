"""Output-length prediction with a probability bound (CacheOPT C1, EconoServe RL prediction).

We cannot read prompts (views carry token counts only) and must not read
``max_tokens`` (an oracle in trace replay), so the predictor is a learned
distribution of output lengths, keyed by SLO class and prompt-length bucket,
with back-off to coarser keys while a key has too few samples:

- point prediction: the median of the key's last ``window`` finished requests;
- bound: the empirical ``p``-quantile of the same samples (default), or the
  one-sided Hoeffding pad ``mean + (b - a) * sqrt(ln(1/(1-p)) / 2n)`` that the
  CacheOPT summaries mention. Hoeffding bounds the *mean*, not one request, so
  it under-reserves for heavy-tailed outputs; docs/algorithms.md has the numbers;
- ``p`` comes from the knob ``predictor_confidence`` and moves with an EWMA of
  the arrival rate relative to the engine's capacity (:class:`ArrivalRate`,
  :func:`confidence_for_rate`, :mod:`.capacity`).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from ..contract.slo import SLO
from .views import FinishedInfo, Prediction


class BoundMethod(StrEnum):
    """How the output bound is derived from the samples."""

    QUANTILE = "quantile"
    HOEFFDING = "hoeffding"


class RateDirection(StrEnum):
    """Which way the confidence moves when the arrival rate rises (not recovered from CacheOPT)."""

    DOWN = "down"
    """Busier -> lower p: reserve less per request, admit more, let reserve/reuse absorb misses."""
    UP = "up"
    """Busier -> higher p: reserve more, because a preemption costs more under load."""
    OFF = "off"
    """p is the knob value."""


@dataclass(frozen=True, slots=True)
class PredictorConfig:
    """Parameters of :class:`LengthPredictor` (defaults are [I] choices, see docs/algorithms.md)."""

    window: int = 1000
    """Finished requests remembered per key (CacheOPT's n)."""
    min_samples: int = 30
    """Samples a key needs before it is used instead of a coarser key."""
    prompt_bucket_edges: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096)
    """Upper edges of prompt-length buckets; prompts above the last edge share one bucket."""
    prior_output: int = 256
    """Cold-start point prediction (a typical chat answer), before any request finished."""
    prior_bound: int = 1024
    """Cold-start bound: generous, so early requests are not preempted."""
    bound_method: BoundMethod = BoundMethod.QUANTILE
    rate_direction: RateDirection = RateDirection.DOWN
    rate_gain: float = 0.3
    """How far p moves between an idle engine and one at ``rate_capacity`` (CacheOPT's k)."""
    rate_capacity: float | None = None
    """Sustainable arrival rate (req/s); ``None``: the policy's estimate from the cost
    model, KV size and traffic seen (:class:`~.capacity.CapacityEstimate`)."""
    confidence_min: float = 0.5
    confidence_max: float = 0.995
    rate_tau_s: float = 30.0
    """Time constant of the arrival-rate EWMA."""


def confidence_for_rate(
    base: float, rate: float, config: PredictorConfig, capacity: float | None = None
) -> float:
    """``p(λ) = clip(base ∓ k·(λ/λ_cap − 0.5))``; CacheOPT's adjustment, direction configurable.

    ``λ_cap`` is ``config.rate_capacity`` when set, else ``capacity`` (the policy's
    estimate); with neither, ``p`` is ``base``.
    """
    cap = config.rate_capacity if config.rate_capacity is not None else capacity
    if config.rate_direction is RateDirection.OFF or cap is None or cap <= 0:
        shifted = base
    else:
        sign = -1.0 if config.rate_direction is RateDirection.DOWN else 1.0
        shifted = base + sign * config.rate_gain * (rate / cap - 0.5)
    return min(max(shifted, config.confidence_min), config.confidence_max)


class ArrivalRate:
    """Exponentially weighted arrival rate (req/s) with time constant ``tau_s``.

    Each arrival adds ``1/tau`` to a value that decays as ``exp(-dt/tau)``: an
    unbiased rate estimate for a Poisson stream once ``tau`` has passed; before
    that, the plain count over elapsed time is used so start-up is not read as idle.
    """

    __slots__ = ("_first", "_last", "_n", "_value", "tau_s")

    def __init__(self, tau_s: float = 30.0) -> None:
        if tau_s <= 0:
            raise ValueError("tau_s must be > 0")
        self.tau_s = tau_s
        self._value = 0.0
        self._last: float | None = None
        self._first: float | None = None
        self._n = 0

    def observe(self, t: float) -> None:
        if self._last is None:
            self._first = t
        else:
            self._value *= math.exp(-max(t - self._last, 0.0) / self.tau_s)
        self._value += 1.0 / self.tau_s
        self._last = t if self._last is None else max(t, self._last)
        self._n += 1

    def rate(self, now: float) -> float:
        if self._last is None or self._first is None:
            return 0.0
        elapsed = now - self._first
        if elapsed < self.tau_s:
            return self._n / max(elapsed, 1.0)
        return self._value * math.exp(-max(now - self._last, 0.0) / self.tau_s)


class _Samples:
    """Last ``window`` values, kept both in arrival order (eviction) and sorted (quantiles)."""

    __slots__ = ("_fifo", "_sorted", "_sum")

    def __init__(self, window: int) -> None:
        self._fifo: deque[int] = deque(maxlen=window)
        self._sorted: list[int] = []
        self._sum = 0

    def add(self, value: int) -> None:
        if len(self._fifo) == self._fifo.maxlen:
            old = self._fifo[0]
            del self._sorted[bisect.bisect_left(self._sorted, old)]
            self._sum -= old
        self._fifo.append(value)
        bisect.insort(self._sorted, value)
        self._sum += value

    def __len__(self) -> int:
        return len(self._sorted)

    def quantile(self, q: float) -> int:
        """Smallest sample ``x`` with ``P(X <= x) >= q`` (empirical distribution)."""
        n = len(self._sorted)
        index = min(max(math.ceil(q * n) - 1, 0), n - 1)
        return self._sorted[index]

    def mean(self) -> float:
        return self._sum / len(self._sorted)

    def max(self) -> int:
        return self._sorted[-1]


def abs_error_tokens(info: FinishedInfo) -> int:
    """Absolute error of one prediction (``sloserve_predictor_abs_error_tokens``)."""
    return abs(info.output_tokens - info.predicted_output)


class LengthPredictor:
    """Online output-length distribution per (SLO class, prompt bucket), with back-off."""

    def __init__(self, config: PredictorConfig | None = None) -> None:
        self.config = config or PredictorConfig()
        self._samples: dict[tuple[str | None, int | None], _Samples] = {}
        self.finished = 0
        self.abs_error_sum = 0
        """Sum of |actual - predicted| over finished requests (mean = sum / finished)."""

    def bucket(self, prompt_tokens: int) -> int:
        return bisect.bisect_left(self.config.prompt_bucket_edges, prompt_tokens)

    def _keys(self, slo: SLO, prompt_tokens: int) -> tuple[tuple[str | None, int | None], ...]:
        return ((slo.slo_class, self.bucket(prompt_tokens)), (slo.slo_class, None), (None, None))

    def observe(self, info: FinishedInfo) -> None:
        """Learn from one finished request."""
        self.finished += 1
        self.abs_error_sum += abs_error_tokens(info)
        for key in self._keys(info.slo, info.prompt_tokens):
            samples = self._samples.get(key)
            if samples is None:
                samples = self._samples[key] = _Samples(self.config.window)
            samples.add(info.output_tokens)

    def predict(
        self, slo: SLO, prompt_tokens: int, max_output_tokens: int, confidence: float
    ) -> Prediction:
        """Point prediction and the bound that holds with probability ``confidence``."""
        cap = max(max_output_tokens, 1)
        for key in self._keys(slo, prompt_tokens):
            samples = self._samples.get(key)
            if samples is not None and len(samples) >= self.config.min_samples:
                point = samples.quantile(0.5)
                bound = self._bound(samples, confidence)
                break
        else:
            point, bound = self.config.prior_output, self.config.prior_bound
        point = min(max(point, 1), cap)
        return Prediction(point, min(max(bound, point), cap))

    def _bound(self, samples: _Samples, confidence: float) -> int:
        if self.config.bound_method is BoundMethod.QUANTILE:
            return samples.quantile(confidence)
        n = len(samples)
        spread = samples.max()  # outputs lie in [0, max seen]
        pad = spread * math.sqrt(math.log(1.0 / (1.0 - confidence)) / (2.0 * n))
        return math.ceil(samples.mean() + pad)
