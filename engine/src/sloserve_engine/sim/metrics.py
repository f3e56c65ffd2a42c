"""Per-run SLO metrics from per-request token timings (pure functions).

Attainment is judged by :mod:`sloserve_engine.contract.attainment`, the one rule
the engine's metrics use too; a request that did not finish counts as a miss.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..contract.attainment import (
    MISSED,
    STALL_BOUND_MS_DEFAULT,
    Attainment,
    Ratios,
    ratios,
    request_attainment,
)
from ..contract.slo import SLO

STALL_S = STALL_BOUND_MS_DEFAULT / 1e3
"""A gap between two tokens of one request longer than this is a stall (a frozen stream)."""


@dataclass(slots=True)
class RequestTiming:
    """What one request experienced (times in seconds on the run's clock)."""

    arrival: float
    output_tokens: int
    first_token: float | None = None
    finish: float | None = None
    tokens_seen: int = 0
    max_gap: float = 0.0
    """Longest gap between two of its tokens (s)."""
    predicted_output: int = 0
    slo: SLO | None = None
    """Its own SLO (mixed-SLO workloads); ``None``: the run's SLO."""

    @property
    def finished(self) -> bool:
        """All of its tokens arrived (a cut-off stream is not finished)."""
        return (
            self.finish is not None
            and self.first_token is not None
            and self.tokens_seen >= self.output_tokens
        )

    def verdict(self, slo: SLO, stall_bound_s: float) -> Attainment:
        """The contract's rule; :data:`MISSED` when it did not finish."""
        if not self.finished:
            return MISSED
        assert self.first_token is not None and self.finish is not None
        return request_attainment(
            self.slo or slo,
            self.arrival,
            self.first_token,
            self.finish,
            self.output_tokens,
            self.max_gap,
            stall_bound_s,
        )


@dataclass(frozen=True, slots=True)
class RunMetrics:
    """Headline numbers of one run (times in seconds)."""

    requests: int
    completed: int
    ttft_p50: float
    ttft_p90: float
    ttft_p99: float
    tbt_p50: float
    tbt_p90: float
    tbt_p99: float
    slo_attainment: float
    """Share of *submitted* requests with TTFT <= SLO and mean time per output token <= SLO."""
    strict_attainment: float
    """Standard attainment plus no gap between two tokens above the stall bound."""
    stall_rate: float
    """Share of inter-token gaps longer than the TBT SLO."""
    goodput: float
    """Attaining requests per second of makespan (first arrival to last finish)."""
    output_tok_s: float
    makespan: float
    predictor_mae: float
    """Mean |predicted - actual| output tokens over completed requests."""
    max_tbt_p99: float
    """p99 over completed requests of each request's longest gap between two tokens."""
    stalls_over_200ms: int
    """Requests whose longest gap between two tokens exceeds :data:`STALL_S`; the mean-TPOT
    attainment rule cannot see these (a long freeze averaged over many tokens)."""
    drain_s: float = float("nan")
    """Last finish minus last arrival (``inf`` if a request never finished)."""
    class_attainment: dict[str, Ratios] = field(default_factory=dict)
    """Per SLO class (only when requests carry their own SLO)."""
    extra: dict[str, float] = field(default_factory=dict)


def _pct(values: np.ndarray, q: float) -> float:
    if not values.size:
        return float("nan")
    with np.errstate(invalid="ignore"):  # interpolating between two infinite values
        p = float(np.percentile(values, q))
    return float("inf") if np.isnan(p) else p


def summarize(
    timings: list[RequestTiming], gaps: np.ndarray, slo: SLO, stall_bound_s: float = STALL_S
) -> RunMetrics:
    """Aggregate a run; ``gaps`` are all inter-token times of all requests."""
    done = [t for t in timings if t.finished]
    # A request that never got a first token waits forever: its TTFT is infinite.
    ttft = np.array(
        [float("inf") if t.first_token is None else t.first_token - t.arrival for t in timings]
    )
    verdicts = [t.verdict(slo, stall_bound_s) for t in timings]
    overall = ratios(verdicts)
    by_class: dict[str, list[Attainment]] = defaultdict(list)
    for t, v in zip(timings, verdicts, strict=True):
        if t.slo is not None:
            by_class[t.slo.slo_class].append(v)
    tpots = [
        (t.finish - t.first_token) / (t.output_tokens - 1)  # type: ignore[operator]
        for t in done
        if t.output_tokens > 1
    ]
    attained = sum(v.both for v in verdicts)
    start = min((t.arrival for t in timings), default=0.0)
    end = max((t.finish for t in done if t.finish is not None), default=start)
    last_arrival = max((t.arrival for t in timings), default=0.0)
    drain = end - last_arrival if len(done) == len(timings) else float("inf")
    makespan = max(end - start, 1e-9)
    out_tokens = sum(t.output_tokens for t in done)
    mae = (
        float(np.mean([abs(t.predicted_output - t.output_tokens) for t in done]))
        if done
        else float("nan")
    )
    max_gaps = np.array([t.max_gap for t in done])
    return RunMetrics(
        requests=len(timings),
        completed=len(done),
        ttft_p50=_pct(ttft, 50),
        ttft_p90=_pct(ttft, 90),
        ttft_p99=_pct(ttft, 99),
        tbt_p50=_pct(gaps, 50),
        tbt_p90=_pct(gaps, 90),
        tbt_p99=_pct(gaps, 99),
        slo_attainment=overall.standard,
        strict_attainment=overall.strict,
        stall_rate=float(np.mean(gaps > slo.tbt_s)) if gaps.size else 0.0,
        goodput=attained / makespan,
        output_tok_s=out_tokens / makespan,
        makespan=makespan,
        predictor_mae=mae,
        max_tbt_p99=_pct(max_gaps, 99),
        stalls_over_200ms=int((max_gaps > stall_bound_s).sum()),
        drain_s=max(drain, 0.0),
        class_attainment={k: ratios(v) for k, v in sorted(by_class.items())},
        extra={
            "tpot_p50": _pct(np.asarray(tpots), 50),
            "tpot_p99": _pct(np.asarray(tpots), 99),
            "max_tbt_p50": _pct(max_gaps, 50),
        },
    )
