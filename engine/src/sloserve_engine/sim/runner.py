"""Offline discrete-event replay: feed a request list to a :class:`SimEngine` at full speed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..contract.slo import SLO
from ..policy.base import Policy
from .costmodel import SimProfile
from .engine import SimConfig, SimEngine
from .metrics import RequestTiming, RunMetrics, summarize
from .workload import TraceRequest


class StalledError(RuntimeError):
    """The policy left requests waiting with nothing running and no arrival to come."""


class LostTokensError(RuntimeError):
    """A replay ended with a request that did not get exactly its output length (a bug)."""


@dataclass(frozen=True, slots=True)
class RunResult:
    metrics: RunMetrics
    preemptions_recompute: int
    preemptions_swap: int
    steps: int
    wall_seconds: float
    kv_usage: np.ndarray
    """(n_steps, 2) array of (step end time, KV usage ratio)."""

    @property
    def preemptions(self) -> int:
        return self.preemptions_recompute + self.preemptions_swap


def replay(
    requests: list[TraceRequest],
    policy: Policy,
    profile: SimProfile,
    config: SimConfig,
    slo: SLO,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Replay ``requests`` (sorted by arrival) and measure every token's time.

    ``progress`` is called with the number of requests finished in each step.
    """
    wall0 = time.perf_counter()
    engine = SimEngine(policy, profile, config)
    timings = [RequestTiming(r.arrival, r.output_tokens, slo=r.slo) for r in requests]
    last = [0.0] * len(requests)
    gaps: list[float] = []
    kv_t: list[float] = []
    kv_u: list[float] = []
    total_blocks = engine.stats().total_blocks
    n = len(requests)
    i = 0
    while True:
        now = engine.now
        while i < n and requests[i].arrival <= now:
            r = requests[i]
            pred = engine.add_request(
                r.request_id,
                r.prompt_tokens,
                r.output_tokens,
                slo=r.slo or slo,
                arrival_time=r.arrival,
            )
            timings[i].predicted_output = pred.predicted_output
            i += 1
        if not engine.has_unfinished:
            if i >= n:
                break
            engine.advance_to(requests[i].arrival)
            continue
        res = engine.step()
        if res.idle:
            if i >= n:
                raise StalledError(
                    f"{engine.stats().waiting} requests wait, nothing runs and none arrive"
                )
            engine.advance_to(requests[i].arrival)
            continue
        end = res.end
        for rid in res.emitted:
            k = int(rid)
            t = timings[k]
            if t.first_token is None:
                t.first_token = end
            else:
                gap = end - last[k]
                gaps.append(gap)
                if gap > t.max_gap:
                    t.max_gap = gap
            last[k] = end
            t.tokens_seen += 1
        for rid in res.finished:
            timings[int(rid)].finish = end
        if progress is not None and res.finished:
            progress(len(res.finished))
        kv_t.append(end)
        kv_u.append(1.0 - engine.free_blocks / total_blocks)
    wrong = [k for k, t in enumerate(timings) if t.tokens_seen != t.output_tokens]
    if wrong:
        raise LostTokensError(f"requests {wrong[:5]} did not get exactly their output tokens")
    stats = engine.stats()
    metrics = summarize(timings, np.asarray(gaps), slo, policy.knobs.stall_bound_s)
    return RunResult(
        metrics=metrics,
        preemptions_recompute=stats.preemptions_recompute,
        preemptions_swap=stats.preemptions_swap,
        steps=stats.steps,
        wall_seconds=time.perf_counter() - wall0,
        kv_usage=np.column_stack([kv_t, kv_u]) if kv_t else np.zeros((0, 2)),
    )
