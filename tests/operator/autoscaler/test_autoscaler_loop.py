"""The loop: spec mapping, and one service evaluated repeatedly against a real /metrics."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from sloserve_engine.telemetry.metrics import EngineMetrics
from sloserve_operator.api import v1alpha1 as api
from sloserve_operator.autoscaler.decision import Reason
from sloserve_operator.autoscaler.loop import Autoscaler, ReplicaState
from sloserve_operator.autoscaler.metrics import AutoscalerMetrics
from sloserve_operator.autoscaler.metrics_source import MetricsEndpoint, PodsSource
from sloserve_operator.autoscaler.spec import policy_from_spec


def spec(**autoscaling) -> api.LLMServiceSpec:
    return api.LLMServiceSpec.model_validate(
        {"model": {"name": "m"}, "slo": {"attainmentTarget": 0.8}, "autoscaling": autoscaling}
    )


def test_policy_defaults_follow_the_spec_and_slo_target_falls_back() -> None:
    p = policy_from_spec(spec())
    assert (p.min_replicas, p.max_replicas, p.kv_pressure_target) == (1, 10, 0.8)
    assert (p.scale_up_stabilization_s, p.scale_down_stabilization_s) == (10, 300)
    assert p.slo_attainment_target == 0.8
    assert policy_from_spec(spec(sloAttainmentTarget=0.99)).slo_attainment_target == 0.99
    assert policy_from_spec(spec(intervalSeconds=20)).metric_max_age_s == 60


@pytest.fixture
def engine() -> Iterator[tuple[EngineMetrics, MetricsEndpoint]]:
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry=registry, mode="simulated")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield metrics, MetricsEndpoint("engine-0", f"http://127.0.0.1:{port}")
    server.shutdown()
    thread.join(5)


async def test_history_carries_across_evaluations(engine) -> None:
    metrics, pod = engine
    clock = iter([0.0, 5.0, 10.0, 15.0])
    registry = CollectorRegistry()
    autoscaler = Autoscaler(AutoscalerMetrics(registry), clock=lambda: next(clock))
    policy = policy_from_spec(spec(scaleUpStabilizationSeconds=10))
    state = ReplicaState("ns", "chat", 1, (pod,))
    source = PodsSource()
    reasons = []
    try:
        metrics.kv_pressure.set(0.8)
        reasons.append((await autoscaler.evaluate(policy, state, source)).decision.reason)
        metrics.kv_pressure.set(1.6)
        for _ in range(3):
            ev = await autoscaler.evaluate(policy, state, source)
            reasons.append(ev.decision.reason)
    finally:
        await source.aclose()
    assert reasons == [Reason.STEADY, Reason.STABILIZING, Reason.STABILIZING, Reason.SCALE_UP_KV]
    assert ev.decision.desired_replicas == 2 and ev.scales
    labels = {"namespace": "ns", "llmservice": "chat"}
    assert registry.get_sample_value("sloserve_operator_desired_replicas", labels) == 2
    autoscaler.forget("ns", "chat")
    assert registry.get_sample_value("sloserve_operator_desired_replicas", labels) is None
