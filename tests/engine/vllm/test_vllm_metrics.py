"""The scheduler reports every step and every finished request through EngineMetrics."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from prometheus_client import CollectorRegistry
from vllm_adapter_helpers import STEP_S, make_engine, pressure_workload

from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.telemetry.metrics import EngineMetrics, FinishedRequest
from sloserve_engine.vllm.scheduler import SLOScheduler

pytestmark = pytest.mark.vllm


def test_metrics_follow_the_scheduler(tiny_model_dir: Path) -> None:
    engine = make_engine(SLOScheduler, tiny_model_dir, asynchronous=True, knobs={"policy": "vllm"})
    registry = CollectorRegistry()
    sched = engine.scheduler
    sched.use_metrics(EngineMetrics(registry, mode="vllm"))
    running_seen: list[float] = []

    def sample(step: int) -> None:
        running_seen.append(
            sum(
                registry.get_sample_value(
                    "sloserve_queue_length", {"queue": "running", "slo_class": c}
                )
                or 0.0
                for c in ("interactive", "batch")
            )
        )

    workload = pressure_workload()
    engine.run(workload, before_step=sample)

    def value(name: str, **labels: str) -> float:
        got = registry.get_sample_value(name, labels)
        assert got is not None, name
        return got

    stats = sched.sloserve_stats
    assert value("sloserve_knobs_revision") == Knobs(policy="vllm").revision()
    assert value("sloserve_preemptions_total", mode="recompute") == stats.preemptions["recompute"]
    assert value("sloserve_preemptions_total", mode="swap") == 0
    finished = sum(
        value("sloserve_requests_finished_total", slo_class=c, attained=a)
        for c in ("interactive", "batch")
        for a in ("true", "false")
    )
    assert finished == len(workload)
    assert value("sloserve_predictor_abs_error_tokens_count") == len(workload)
    assert value("sloserve_chunk_tokens") == 64
    assert 0.0 <= value("sloserve_kv_usage_ratio") <= 1.0
    assert max(running_seen) == 6, "running queue reached max_num_seqs under pressure"
    assert value("sloserve_slo_attainment_ratio", kind="both") <= 1.0


class CountingMetrics(EngineMetrics):
    """Real metrics that also remember when each step was reported."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry, mode="vllm")
        self.reports: list[tuple[float, bool]] = []

    def record_step(self, snapshot: Any, plan: Any, preempted: Any, now: float) -> None:
        self.reports.append((now, any(preempted.values())))
        super().record_step(snapshot, plan, preempted, now)


def test_step_reports_are_rate_limited_but_preemptions_exact(tiny_model_dir: Path) -> None:
    engine = make_engine(SLOScheduler, tiny_model_dir, asynchronous=True, knobs={"policy": "vllm"})
    sched = engine.scheduler
    registry = CollectorRegistry()
    metrics = CountingMetrics(registry)
    sched.use_metrics(metrics)
    sched.sloserve_metrics_interval_s = 0.05  # five of the helper's 10 ms steps
    engine.run(pressure_workload())

    quiet = [t for t, preempted in metrics.reports if not preempted]
    assert len(quiet) >= 2
    assert all(b - a >= 0.05 - 1e-9 for a, b in itertools.pairwise(quiet))
    assert len(metrics.reports) < sched.sloserve_stats.steps
    preemptions = sched.sloserve_stats.preemptions["recompute"]
    assert preemptions > 0, "the workload must preempt for this test to mean anything"
    got = registry.get_sample_value("sloserve_preemptions_total", {"mode": "recompute"})
    assert got == preemptions


class FinishLog(EngineMetrics):
    """Real metrics that also keep every finished request they were given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry, mode="vllm")
        self.by_arrival: list[FinishedRequest] = []

    def record_finish(self, request: FinishedRequest, now: float) -> None:
        self.by_arrival.append(request)
        super().record_finish(request, now)


def test_longest_gap_per_request_matches_when_its_tokens_landed(tiny_model_dir: Path) -> None:
    """Strict attainment needs each stream's longest gap; the adapter measures it on its clock,
    here checked against token arrivals observed between the helper's 10 ms steps (the pressure
    workload preempts, so some streams freeze for many steps)."""
    engine = make_engine(SLOScheduler, tiny_model_dir, asynchronous=True, knobs={"policy": "vllm"})
    metrics = FinishLog(CollectorRegistry())
    engine.scheduler.use_metrics(metrics)
    landed: dict[str, list[float]] = {}
    seen: dict[str, int] = {}
    steps = [0]

    def observe(step: int) -> None:
        steps[0] = step
        for rid, tokens in engine.driver.emitted.items():
            if len(tokens) > seen.get(rid, 0):
                landed.setdefault(rid, []).append((step - 1) * STEP_S)
                seen[rid] = len(tokens)

    workload = pressure_workload()
    engine.run(workload, before_step=observe)
    observe(steps[0] + 1)  # the tokens of the last step
    expected = {
        rid: max((b - a for a, b in itertools.pairwise(times)), default=0.0)
        for rid, times in landed.items()
    }
    got = {
        round(r.arrival_time / STEP_S): r.max_gap_s for r in metrics.by_arrival
    }  # arrival step identifies the request
    want = {a.step: expected[a.request_id] for a in workload}
    assert got == pytest.approx(want)
    assert max(want.values()) > 10 * STEP_S, "a preempted stream must freeze for many steps"
