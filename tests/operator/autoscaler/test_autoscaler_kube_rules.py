"""The pure rules of the Kubernetes edge, over API JSON as the API server returns it."""

from __future__ import annotations

import datetime as dt

import pytest

from sloserve_operator.api import v1alpha1 as api
from sloserve_operator.autoscaler.decision import Observation, PodSample, Policy, Reason, decide
from sloserve_operator.autoscaler.kube import (
    event_body,
    event_worthy,
    pending_count,
    ready_endpoints,
    rollout_in_progress,
    status_patch,
)
from sloserve_operator.autoscaler.loop import Evaluation, ServiceState
from sloserve_operator.autoscaler.metrics_source import PodEndpoint, Scrape

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def pod(name: str, ip: str | None, ready: str | None, phase: str = "Running", **extra) -> dict:
    conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
    if "scheduled" in extra:
        conditions.append({"type": "PodScheduled", "status": extra.pop("scheduled")})
    return {
        "metadata": {"name": name, **extra},
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8000}]}]},
        "status": {"phase": phase, "podIP": ip, "conditions": conditions},
    }


def test_ready_endpoints_skip_unready_ipless_and_terminating_pods() -> None:
    pods = [
        pod("b", "127.0.0.3", "True"),
        pod("a", "127.0.0.2", "True"),
        pod("starting", "127.0.0.4", "False"),
        pod("no-ip", None, "True"),
        pod("leaving", "127.0.0.5", "True", deletionTimestamp="2026-01-01T00:00:00Z"),
    ]
    assert ready_endpoints(pods) == (
        PodEndpoint("a", "http://127.0.0.2:8000"),
        PodEndpoint("b", "http://127.0.0.3:8000"),
    )


def test_pending_counts_only_unschedulable_pods() -> None:
    pods = [
        pod("placed", None, "False", phase="Pending", scheduled="True"),
        pod("no-gpu", None, None, phase="Pending", scheduled="False"),
        pod("running", "127.0.0.2", "True"),
    ]
    assert pending_count(pods) == 1


def deployment(generation=2, observed=2, replicas=3, updated=3, current=3) -> dict:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "replicas": current,
        },
    }


@pytest.mark.parametrize(
    ("dep", "expected"),
    [
        pytest.param(None, False, id="no deployment yet"),
        pytest.param(deployment(), False, id="settled"),
        pytest.param(deployment(generation=3), True, id="new generation not observed"),
        pytest.param(deployment(updated=1), True, id="pods of the new template missing"),
        pytest.param(deployment(current=4), True, id="old pods still running"),
        pytest.param(deployment(replicas=3, updated=3, current=3), False, id="scale-up only"),
    ],
)
def test_rollout_in_progress(dep, expected) -> None:
    assert rollout_in_progress(dep) is expected


BODY = {"metadata": {"name": "chat", "namespace": "ns", "uid": "u-1"}}


def evaluation(current: int, kv: float, pending: int = 0) -> Evaluation:
    state = ServiceState("ns", "chat", current, (), pending_replicas=pending)
    obs = Observation(0.0, current, current, pending, False, [PodSample("p", kv, 0.99, 5.0)])
    return Evaluation(state, Scrape((), {"gone": "timed out after 2s"}), decide(Policy(), obs))


def test_scaling_writes_a_valid_last_scale_and_an_event() -> None:
    ev = evaluation(1, 2.0)
    assert ev.scales and event_worthy(ev, None)
    patch = status_patch(ev, NOW)
    api.LLMServiceStatus.model_validate(patch["status"])
    last = patch["status"]["lastScale"]
    assert (last["from"], last["to"], last["reason"]) == (1, 3, "ScaleUpKVPressure")
    assert last["time"] == "2026-01-02T03:04:05Z"
    event = event_body(BODY, ev, NOW)
    assert event["involvedObject"]["kind"] == "LLMService"
    assert event["type"] == "Normal"
    assert "kvDesired=3" in event["message"]
    assert "scrapeFailures=[gone: timed out after 2s]" in event["message"]


def test_pending_hold_is_a_warning_event_once() -> None:
    ev = evaluation(3, 2.0, pending=2)
    assert ev.decision.reason is Reason.PENDING and not ev.scales
    assert event_worthy(ev, None) and not event_worthy(ev, Reason.PENDING)
    event = event_body(BODY, ev, NOW)
    assert event["type"] == "Warning"
    assert event["message"].startswith("not scaling beyond 3: 2 pod(s) pending (no free GPU).")
    assert "lastScale" not in status_patch(ev, NOW)["status"]


def test_steady_state_posts_no_event() -> None:
    ev = evaluation(2, 0.8)
    assert ev.decision.reason is Reason.STEADY
    assert not event_worthy(ev, None)
