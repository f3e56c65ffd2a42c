"""Outcomes of requests (finished, aborted, rejected, error) and what they do to attainment.

Issue 12 item 4: a client that gave up was counted nowhere, and a non-streaming
request whose client disconnected ran to completion and counted as attained.
Over real HTTP against the simulated engine, plus the pure window rules.
"""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client import CollectorRegistry
from test_simulated_engine import metric

from sloserve_engine.contract.attainment import MISSED
from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy.views import EngineSnapshot, RequestView
from sloserve_engine.telemetry.attainment import (
    Outcome,
    SlidingWindowAttainment,
    counts_as_miss,
    overdue_count,
)
from sloserve_engine.telemetry.metrics import EngineMetrics


def _wait_idle(base: str, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if httpx.get(f"{base}/sloserve/health").json()["openRequests"] == 0:
            return True
        time.sleep(0.02)
    return False


def test_client_leaving_a_stream_is_counted_aborted_and_misses_its_slo(base: str) -> None:
    payload = {"prompt": [1] * 64, "max_tokens": 5000, "stream": True}
    with httpx.stream("POST", f"{base}/v1/completions", json=payload, timeout=30) as r:
        assert next(r.iter_lines()).startswith("data: ")
    assert _wait_idle(base, 5)
    assert metric(base, "sloserve_requests_total", slo_class="standard", outcome="aborted") == 1
    assert metric(base, "sloserve_requests_total", slo_class="standard", outcome="finished") == 0
    assert metric(base, "sloserve_slo_window_requests") == 1
    assert metric(base, "sloserve_slo_attainment_ratio", kind="both") == 0.0


def test_client_leaving_a_non_streaming_request_aborts_it_before_it_completes(base: str) -> None:
    # 7000 tokens take ~8 s of wall time at time_scale 5: the client leaves after 0.3 s.
    body = {"prompt": [1] * 10, "max_tokens": 7000}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{base}/v1/completions", json=body, timeout=httpx.Timeout(5, read=0.3))
    assert _wait_idle(base, 4), "the abandoned request kept running"
    assert metric(base, "sloserve_requests_total", slo_class="standard", outcome="aborted") == 1
    assert (
        metric(base, "sloserve_requests_finished_total", slo_class="standard", attained="true") == 0
    )
    assert metric(base, "sloserve_slo_attainment_ratio", kind="both") == 0.0


def test_rejected_request_is_counted_but_never_moves_attainment(base: str) -> None:
    r = httpx.post(f"{base}/v1/completions", json={"prompt": [1] * 9000, "max_tokens": 1})
    assert r.status_code == 400
    assert metric(base, "sloserve_requests_total", slo_class="standard", outcome="rejected") == 1
    assert metric(base, "sloserve_slo_window_requests") == 0
    assert metric(base, "sloserve_slo_attainment_ratio", kind="both") == 1.0


def test_finished_request_is_counted_finished(base: str) -> None:
    r = httpx.post(f"{base}/v1/completions", json={"prompt": "hi", "max_tokens": 3}, timeout=30)
    assert r.status_code == 200
    assert metric(base, "sloserve_requests_total", slo_class="standard", outcome="finished") == 1
    assert metric(base, "sloserve_requests_total", slo_class="standard", outcome="aborted") == 0


@pytest.mark.parametrize(
    ("outcome", "miss"),
    [(Outcome.ABORTED, True), (Outcome.ERROR, True), (Outcome.REJECTED, False)],
)
def test_which_outcomes_are_slo_misses(outcome: Outcome, miss: bool) -> None:
    assert counts_as_miss(outcome) is miss


def test_aborted_and_failed_requests_enter_the_window_as_misses() -> None:
    registry = CollectorRegistry()
    m = EngineMetrics(registry, window_s=10.0, mode="simulated")
    m.record_ended("standard", Outcome.ABORTED, now=1.0)
    m.record_ended("standard", Outcome.ERROR, now=2.0)
    m.record_ended("standard", Outcome.REJECTED, now=3.0)
    assert registry.get_sample_value("sloserve_slo_window_requests") == 2
    assert registry.get_sample_value("sloserve_slo_attainment_ratio", {"kind": "both"}) == 0.0
    for outcome, n in (("aborted", 1), ("error", 1), ("rejected", 1), ("finished", 0)):
        labels = {"slo_class": "standard", "outcome": outcome}
        assert registry.get_sample_value("sloserve_requests_total", labels) == n
    with pytest.raises(ValueError, match="record_finish"):
        m.record_ended("standard", Outcome.FINISHED, now=4.0)


def _waiting(rid: str, arrival: float, ttft_s: float) -> RequestView:
    return RequestView(
        request_id=rid,
        arrival_time=arrival,
        prompt_tokens=100,
        output_tokens=0,
        computed_tokens=0,
        blocks_held=0,
        slo=SLO(slo_class="standard", ttft_ms=ttft_s * 1000, tbt_ms=100),
        predicted_output=10,
        output_bound=20,
        max_output_tokens=1000,
    )


def test_window_where_nothing_finished_but_requests_wait_past_ttft_is_not_full() -> None:
    """Nothing finished, two requests wait: one already past its TTFT target."""
    registry = CollectorRegistry()
    m = EngineMetrics(registry, window_s=60.0, mode="simulated")
    snapshot = EngineSnapshot(
        now=2.0,
        block_size=16,
        total_blocks=100,
        free_blocks=100,
        max_num_batched_tokens=8192,
        max_num_seqs=256,
        running=(),
        waiting=(_waiting("late", 0.0, ttft_s=1.0), _waiting("fresh", 1.9, ttft_s=1.0)),
    )
    m.record_step(snapshot, None, {}, now=2.0)
    assert registry.get_sample_value("sloserve_slo_attainment_ratio", {"kind": "both"}) == 0.0
    assert registry.get_sample_value("sloserve_slo_window_requests") == 1
    m.refresh(now=3.0)  # the fresh one is overdue too by now
    assert registry.get_sample_value("sloserve_slo_window_requests") == 2


def test_overdue_count_and_window_denominator() -> None:
    assert overdue_count([1.0, 2.0, 3.0], now=2.5) == 2
    w = SlidingWindowAttainment(10.0)
    w.add(1.0, MISSED)
    r = w.ratios(now=2.0, overdue=3)
    assert (r.both, r.requests) == (0.0, 4)
