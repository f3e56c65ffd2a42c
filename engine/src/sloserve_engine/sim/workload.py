"""Workloads: real request traces and length distributions, with arrivals at a target rate.

Data (``sloserve_engine/data/traces``, see its ``README.md`` for attribution):
the Azure LLM inference 2023 conversation and code traces (timestamps and
lengths) and the ShareGPT and arXiv-summarisation length distributions, all
from the source archive of ``vidur`` 0.0.26.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import numpy as np

Arrival = Literal["trace", "poisson", "gamma"]

TRACES: dict[str, tuple[str, bool]] = {
    # name: (file, has timestamps)
    "azure-conv": ("splitwise_conv.csv", True),
    "azure-code": ("splitwise_code.csv", True),
    "sharegpt": ("sharegpt_8k_filtered_stats_llama2_tokenizer.csv", False),
    "arxiv": ("arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv", False),
}


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request to replay: it produces exactly ``output_tokens`` tokens."""

    request_id: str
    arrival: float
    prompt_tokens: int
    output_tokens: int


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

    def __post_init__(self) -> None:
        if self.trace not in TRACES:
            raise ValueError(f"unknown trace {self.trace!r}; choose one of {', '.join(TRACES)}")
        if self.requests < 1 or self.rate <= 0:
            raise ValueError("requests must be >= 1 and rate > 0")
        if self.arrival == "trace" and not TRACES[self.trace][1]:
            raise ValueError(f"trace {self.trace!r} has no timestamps: use poisson or gamma")
        if self.gamma_cv <= 0:
            raise ValueError("gamma_cv must be > 0")


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
    rng = np.random.default_rng(spec.seed)
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
    if timed:
        idx = np.arange(min(spec.requests, len(prompts)))
    else:
        idx = np.random.default_rng(spec.seed + 1).integers(0, len(prompts), spec.requests)
    if len(idx) < spec.requests:
        raise ValueError(f"trace {spec.trace!r} has only {len(prompts)} requests")
    arrivals = arrival_times(spec, times)
    return [
        TraceRequest(
            str(k),
            float(arrivals[k]),
            max(1, min(prompts[i], spec.prompt_cap)),
            max(1, min(outputs[i], spec.output_cap)),
        )
        for k, i in enumerate(idx)
    ]
