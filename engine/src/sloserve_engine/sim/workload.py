"""Workloads: real request traces and length distributions, with arrivals at a target rate.

Data (``sloserve_engine/data/traces``, see its ``README.md`` for attribution):
the Azure LLM inference 2023 conversation and code traces (timestamps and
lengths) and the ShareGPT and arXiv-summarisation length distributions, all
from the source archive of ``vidur`` 0.0.26.

Held-out evaluation: ``segment`` k replays the trace's requests
``[k·requests, (k+1)·requests)`` (disjoint slices of the timed traces; for the
length-only traces, an independent draw of lengths and arrivals), and
``slo_mix`` turns any trace into a mixed-SLO workload of :data:`SLO_CLASSES`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import numpy as np

from ..contract.slo import SLO

Arrival = Literal["trace", "poisson", "gamma"]

TRACES: dict[str, tuple[str, bool]] = {
    # name: (file, has timestamps)
    "azure-conv": ("splitwise_conv.csv", True),
    "azure-code": ("splitwise_code.csv", True),
    "sharegpt": ("sharegpt_8k_filtered_stats_llama2_tokenizer.csv", False),
    "arxiv": ("arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv", False),
}

SLO_CLASSES: dict[str, SLO] = {
    "interactive": SLO(slo_class="interactive", ttft_ms=250, tbt_ms=50),
    "batch": SLO(slo_class="batch", ttft_ms=5000, tbt_ms=200),
}
"""The mixed-SLO workload's classes: a chat user and an offline job on one engine."""
SEGMENT_SEED_STRIDE = 1000
"""Seed offset per segment of a length-only trace (its draws must not overlap seeds)."""


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request to replay: it produces exactly ``output_tokens`` tokens."""

    request_id: str
    arrival: float
    prompt_tokens: int
    output_tokens: int
    slo: SLO | None = None
    """Its own SLO (mixed-SLO workloads); ``None``: the run's default SLO."""


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """How to build a request list; the GPU baseline is the default (azure-conv, 1,500)."""

    trace: str = "azure-conv"
    requests: int = 1500
    rate: float = 16.0
    """Target mean arrival rate, requests/s."""
    arrival: Arrival = "trace"
    """``trace``: the trace's timestamps scaled to ``rate``; ``poisson``; ``gamma`` (bursty)."""
    gamma_cv: float = 3.0
    """Coefficient of variation of gamma inter-arrival times (1 = Poisson)."""
    prompt_cap: int = 7000
    output_cap: int = 1000
    seed: int = 0
    segment: int = 0
    """Which disjoint slice of ``requests`` requests to replay (0: the trace's start)."""
    slo_mix: float | None = None
    """Share of ``interactive`` requests, the rest ``batch``; ``None``: one SLO for all."""

    def __post_init__(self) -> None:
        if self.trace not in TRACES:
            raise ValueError(f"unknown trace {self.trace!r}; choose one of {', '.join(TRACES)}")
        if self.requests < 1 or self.rate <= 0:
            raise ValueError("requests must be >= 1 and rate > 0")
        if self.arrival == "trace" and not TRACES[self.trace][1]:
            raise ValueError(f"trace {self.trace!r} has no timestamps: use poisson or gamma")
        if self.gamma_cv <= 0:
            raise ValueError("gamma_cv must be > 0")
        if self.segment < 0:
            raise ValueError("segment must be >= 0")
        if self.slo_mix is not None and not 0.0 <= self.slo_mix <= 1.0:
            raise ValueError("slo_mix must be in [0, 1]")

    @property
    def stream_seed(self) -> int:
        """Seed of this segment's random draws (segment 0 keeps ``seed``: earlier results)."""
        return self.seed + SEGMENT_SEED_STRIDE * self.segment


def _read_rows(filename: str) -> tuple[list[float], list[int], list[int]]:
    text = (resources.files("sloserve_engine") / "data" / "traces" / filename).read_text()
    reader = csv.DictReader(text.splitlines())
    times: list[float] = []
    prompts: list[int] = []
    outputs: list[int] = []
    for row in reader:
        times.append(float(row.get("arrived_at") or 0.0))
        prompts.append(int(row["num_prefill_tokens"]))
        outputs.append(int(row["num_decode_tokens"]))
    return times, prompts, outputs


def arrival_times(spec: WorkloadSpec, trace_times: list[float]) -> np.ndarray:
    """Arrival times (s, first at 0) for ``spec.requests`` requests at mean ``spec.rate``."""
    n = spec.requests
    if spec.arrival == "trace":
        t: np.ndarray = np.asarray(trace_times[:n], dtype=float)
        t = t - t[0]
        span = float(t[-1])
        # Same scaling as the GPU baseline: n requests over span seconds -> n / rate seconds.
        scale = n / (spec.rate * span) if span > 0 else 1.0
        return t * scale
    rng = np.random.default_rng(spec.stream_seed)
    if spec.arrival == "poisson":
        gaps = rng.exponential(1.0 / spec.rate, n)
    else:
        shape = 1.0 / spec.gamma_cv**2
        gaps = rng.gamma(shape, 1.0 / (spec.rate * shape), n)
    gaps[0] = 0.0
    return np.asarray(np.cumsum(gaps), dtype=float)


def build_workload(spec: WorkloadSpec) -> list[TraceRequest]:
    """The request list, sorted by arrival; lengths capped like the GPU baseline."""
    filename, timed = TRACES[spec.trace]
    times, prompts, outputs = _read_rows(filename)
    n = spec.requests
    if timed:
        first = spec.segment * n
        if first + n > len(prompts):
            raise ValueError(
                f"trace {spec.trace!r} has {len(prompts)} requests: segment {spec.segment} "
                f"of {n} needs {first + n}"
            )
        idx = np.arange(first, first + n)
    else:
        idx = np.random.default_rng(spec.stream_seed + 1).integers(0, len(prompts), n)
    arrivals = arrival_times(spec, [times[i] for i in idx])
    slos = slo_classes(spec)
    return [
        TraceRequest(
            str(k),
            float(arrivals[k]),
            max(1, min(prompts[i], spec.prompt_cap)),
            max(1, min(outputs[i], spec.output_cap)),
            slos[k] if slos else None,
        )
        for k, i in enumerate(idx)
    ]


def slo_classes(spec: WorkloadSpec) -> list[SLO]:
    """Each request's class when ``slo_mix`` is set (independent of lengths and arrivals)."""
    if spec.slo_mix is None:
        return []
    draws = np.random.default_rng(spec.stream_seed + 2).random(spec.requests)
    interactive, batch = SLO_CLASSES["interactive"], SLO_CLASSES["batch"]
    return [interactive if u < spec.slo_mix else batch for u in draws]
