"""Per-run SLO metrics from per-request token timings (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STALL_S = 0.2
"""A gap between two tokens of one request longer than this is a stall (a frozen stream)."""


@dataclass(frozen=True, slots=True)
class SLO:
    """The attainment rule of the GPU baseline."""

    ttft_s: float = 1.0
    tbt_s: float = 0.1


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
    extra: dict[str, float] = field(default_factory=dict)


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


def summarize(timings: list[RequestTiming], gaps: np.ndarray, slo: SLO) -> RunMetrics:
    """Aggregate a run; ``gaps`` are all inter-token times of all requests."""
    done = [t for t in timings if t.finish is not None and t.first_token is not None]
    ttft = np.array([t.first_token - t.arrival for t in done])  # type: ignore[operator]
    attained = 0
    tpots: list[float] = []
    for t in done:
        assert t.first_token is not None and t.finish is not None
        tpot = (t.finish - t.first_token) / (t.output_tokens - 1) if t.output_tokens > 1 else 0.0
        if t.output_tokens > 1:
            tpots.append(tpot)
        if t.first_token - t.arrival <= slo.ttft_s and tpot <= slo.tbt_s:
            attained += 1
    start = min((t.arrival for t in timings), default=0.0)
    end = max((t.finish for t in done if t.finish is not None), default=start)
    makespan = max(end - start, 1e-9)
    out_tokens = sum(t.output_tokens for t in done)
    mae = (
        float(np.mean([abs(t.predicted_output - t.output_tokens) for t in done]))
        if done
        else float("nan")
    )
    return RunMetrics(
        requests=len(timings),
        completed=len(done),
        ttft_p50=_pct(ttft, 50),
        ttft_p90=_pct(ttft, 90),
        ttft_p99=_pct(ttft, 99),
        tbt_p50=_pct(gaps, 50),
        tbt_p90=_pct(gaps, 90),
        tbt_p99=_pct(gaps, 99),
        slo_attainment=attained / len(timings) if timings else float("nan"),
        stall_rate=float(np.mean(gaps > slo.tbt_s)) if gaps.size else 0.0,
        goodput=attained / makespan,
        output_tok_s=out_tokens / makespan,
        makespan=makespan,
        predictor_mae=mae,
        max_tbt_p99=_pct(np.array([t.max_gap for t in done]), 99),
        stalls_over_200ms=sum(1 for t in done if t.max_gap > STALL_S),
        extra={
            "tpot_p50": _pct(np.asarray(tpots), 50),
            "tpot_p99": _pct(np.asarray(tpots), 99),
            "max_tbt_p50": _pct(np.array([t.max_gap for t in done]), 50),
        },
    )
