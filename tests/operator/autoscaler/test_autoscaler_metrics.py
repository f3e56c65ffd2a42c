"""Operator metrics of the autoscaler: names, help text, values, and cleanup."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from sloserve_operator.autoscaler.decision import Observation, PodSample, ScalingPolicy, decide
from sloserve_operator.autoscaler.metrics import AutoscalerMetrics

NAMES = {
    "sloserve_operator_desired_replicas": "gauge",
    "sloserve_operator_scale_decisions": "counter",
    "sloserve_operator_pending_replicas": "gauge",
    "sloserve_operator_metrics_scrape_failures": "counter",
    "sloserve_operator_slo_target_ratio": "gauge",
    "sloserve_operator_max_replicas": "gauge",
    "sloserve_operator_last_cold_start_seconds": "gauge",
    "sloserve_operator_idle_seconds": "gauge",
}


def test_every_metric_has_a_name_type_and_help() -> None:
    registry = CollectorRegistry()
    AutoscalerMetrics(registry)
    families = {f.name: f for f in registry.collect()}
    assert {n: f.type for n, f in families.items()} == NAMES
    assert all(len(f.documentation) > 20 for f in families.values())


def test_record_and_forget() -> None:
    registry = CollectorRegistry()
    m = AutoscalerMetrics(registry)
    policy = ScalingPolicy(max_replicas=7, slo_attainment_target=0.9)
    d = decide(policy, Observation(0.0, 1, 1, 0, False, [PodSample("p", 2.0, 0.99, 3.0)]))
    m.record("ns", "chat", policy, d, pending=2, scrape_failures=1)
    m.record("ns", "chat", policy, d, pending=2, scrape_failures=1)
    labels = {"namespace": "ns", "llmservice": "chat"}
    get = registry.get_sample_value
    assert get("sloserve_operator_desired_replicas", labels) == 2
    assert get("sloserve_operator_scale_decisions_total", {**labels, "reason": d.reason}) == 2
    assert get("sloserve_operator_pending_replicas", labels) == 2
    assert get("sloserve_operator_metrics_scrape_failures_total", labels) == 2
    assert get("sloserve_operator_slo_target_ratio", labels) == 0.9
    assert get("sloserve_operator_max_replicas", labels) == 7
    assert get("sloserve_operator_idle_seconds", labels) == 0
    assert get("sloserve_operator_last_cold_start_seconds", labels) is None  # no wake yet
    m.record("ns", "chat", policy, d, pending=0, scrape_failures=0, cold_start_s=41.5)
    assert get("sloserve_operator_last_cold_start_seconds", labels) == 41.5
    m.forget("ns", "chat")
    assert get("sloserve_operator_desired_replicas", labels) is None
    assert get("sloserve_operator_last_cold_start_seconds", labels) is None
    assert get("sloserve_operator_scale_decisions_total", {**labels, "reason": d.reason}) is None
