"""The pure rules of the Kubernetes edge, over API JSON as the API server returns it."""

from __future__ import annotations

import datetime as dt

import pytest

from sloserve_operator.api import v1alpha1 as api
from sloserve_operator.autoscaler.decision import (
    History,
    Observation,
    PodSample,
    Reason,
    RouterSample,
    ScalingPolicy,
    decide,
)
from sloserve_operator.autoscaler.kube import (
    event_body,
    event_worthy,
    override_event,
    replica_state,
    rollout_in_progress,
    status_due,
    status_patch,
)
from sloserve_operator.autoscaler.loop import Evaluation, ReplicaState
from sloserve_operator.autoscaler.metrics_source import MetricsEndpoint, Scrape
from sloserve_operator.cache import PodInfo
from sloserve_operator.render.target import Target

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


TARGET = Target(
    "chat",
    "ns",
    "u-1",
    1,
    api.LLMServiceSpec.model_validate({"model": {"name": "m"}, "replicas": 3}),
)


def test_service_state_from_the_watch_cache() -> None:
    pods = [
        PodInfo("b", "u", "127.0.0.3", True),
        PodInfo("a", "u", "127.0.0.2", True),
        PodInfo("starting", "u", "127.0.0.4", False),
        PodInfo("no-ip", "u", "", True),
        PodInfo("no-gpu", "u", "", False, unschedulable="0/2 nodes: Insufficient nvidia.com/gpu"),
    ]
    state = replica_state(TARGET, pods, None)
    assert state.ready_pods == (
        MetricsEndpoint("a", "http://127.0.0.2:8000"),
        MetricsEndpoint("b", "http://127.0.0.3:8000"),
    )
    assert (state.current_replicas, state.pending_replicas) == (3, 1)
    assert not state.rollout_in_progress
    routers = [PodInfo("r", "u", "127.0.0.9", True), PodInfo("r2", "u", "", False)]
    state = replica_state(TARGET, pods, None, routers)
    assert state.ready_routers == (MetricsEndpoint("r", "http://127.0.0.9:8000"),)
    untiered = Target(
        "chat",
        "ns",
        "u-1",
        1,
        TARGET.spec.model_copy(update={"router": api.RouterSpec(replicas=0)}),
    )
    assert replica_state(untiered, pods, None, routers).ready_routers == ()


def test_status_reports_idle_time_and_cold_start() -> None:
    policy = ScalingPolicy(min_replicas=0, scale_to_zero_after_s=900)
    idle = Observation(1000.0, 0, 0, router=RouterSample(0, 0, 0))
    decision = decide(policy, idle, History(last_activity=100.0))
    state = ReplicaState("ns", "chat", 0, ())
    patch = status_patch(Evaluation(state, Scrape(()), decision), NOW)["status"]
    api.LLMServiceStatus.model_validate(patch)
    assert patch["activity"] == "Idle"
    assert patch["lastRequestTime"] == "2026-01-02T02:49:05Z"  # 900 s before NOW
    assert "lastColdStartSeconds" not in patch
    served = Observation(
        1042.0,
        1,
        1,
        samples=[PodSample("p", 0.1, None, 0.0, started=1.0)],
        router=RouterSample(0, 1, 0),
    )
    decision = decide(policy, served, History(last_activity=1000.0, woke_at=1000.0))
    patch = status_patch(Evaluation(ReplicaState("ns", "chat", 1, ()), Scrape(()), decision), NOW)
    assert patch["status"]["lastColdStartSeconds"] == 42.0
    assert patch["status"]["activity"] == "Active"
    no_router = status_patch(evaluation(2, 0.8), NOW)["status"]
    assert "lastRequestTime" not in no_router and no_router["activity"] == "Active"


def deployment(generation=2, observed=2, updated=3, current=3) -> dict:
    return {
        "metadata": {"generation": generation},
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
        pytest.param(deployment(updated=1), True, id="old-template pods still running"),
        pytest.param(deployment(updated=5, current=5), False, id="scale-up: new pods are updated"),
    ],
)
def test_rollout_in_progress(dep, expected) -> None:
    assert rollout_in_progress(dep) is expected


BODY = {"metadata": {"name": "chat", "namespace": "ns", "uid": "u-1"}}


def evaluation(current: int, kv: float, pending: int = 0) -> Evaluation:
    ready = current - pending
    state = ReplicaState("ns", "chat", current, (), pending_replicas=pending)
    samples = [PodSample(f"p{i}", kv, 0.99, 5.0) for i in range(ready)]
    obs = Observation(0.0, current, ready, pending, False, samples)
    return Evaluation(
        state, Scrape((), {"gone": "timed out after 2s"}), decide(ScalingPolicy(), obs)
    )


def test_scaling_writes_a_valid_last_scale_and_an_event() -> None:
    ev = evaluation(1, 2.0)
    assert ev.scales and event_worthy(ev, None)
    patch = status_patch(ev, NOW)
    api.LLMServiceStatus.model_validate(patch["status"])
    last = patch["status"]["lastScale"]
    assert (last["from"], last["to"], last["reason"]) == (1, 2, "ScaleUpKVPressure")
    assert last["time"] == "2026-01-02T03:04:05Z"
    event = event_body(BODY, ev, NOW)
    assert event["involvedObject"]["kind"] == "LLMService"
    assert event["type"] == "Normal"
    assert "kvDesired=2" in event["message"]
    assert "scrapeFailures=[gone: timed out after 2s]" in event["message"]


def test_pending_hold_is_a_warning_event_once() -> None:
    ev = evaluation(6, 2.0, pending=1)
    assert ev.decision.reason is Reason.PENDING and not ev.scales
    assert event_worthy(ev, None) and not event_worthy(ev, Reason.PENDING)
    event = event_body(BODY, ev, NOW)
    assert event["type"] == "Warning"
    assert event["message"].startswith("not scaling beyond 6: 1 pod(s) pending (no free GPU).")
    assert "lastScale" not in status_patch(ev, NOW)["status"]


def test_steady_state_posts_no_event() -> None:
    ev = evaluation(2, 0.8)
    assert ev.decision.reason is Reason.STEADY
    assert not event_worthy(ev, None)


@pytest.mark.parametrize(
    ("new", "old", "since", "due"),
    [
        pytest.param({"sloAttainment": 0.9}, None, 0, True, id="first write"),
        pytest.param({"sloAttainment": 0.93}, {"sloAttainment": 0.9}, 5, False, id="small move"),
        pytest.param({"sloAttainment": 0.96}, {"sloAttainment": 0.9}, 5, True, id="big move"),
        pytest.param({"kvPressure": None}, {"kvPressure": 0.4}, 5, True, id="signal vanished"),
        pytest.param({"kvPressure": 0.41}, {"kvPressure": 0.4}, 61, True, id="refresh"),
        pytest.param(
            {"lastScale": {}, "kvPressure": 0.4}, {"kvPressure": 0.4}, 1, True, id="scale"
        ),
        pytest.param({"activity": "Idle"}, {"activity": "Active"}, 1, True, id="went idle"),
        pytest.param({"activity": "Idle"}, {"activity": "Idle"}, 1, False, id="still idle"),
        pytest.param(
            {"lastColdStartSeconds": 40.0}, {"activity": "Waking"}, 1, True, id="cold start"
        ),
    ],
)
def test_status_is_written_only_with_news(new, old, since, due) -> None:
    old_patch = None if old is None else {"status": old}
    assert status_due({"status": new}, old_patch, since) is due


def no_metrics(failures: dict[str, str]) -> Evaluation:
    pods = (MetricsEndpoint("chat-0", "http://10.0.0.1:8000"),)
    state = ReplicaState("ns", "chat", 1, pods)
    obs = Observation(0.0, 1, 1, 0, False, [])
    return Evaluation(state, Scrape((), failures), decide(ScalingPolicy(), obs))


def test_no_metrics_from_a_starting_pod_is_normal_and_says_so() -> None:
    ev = no_metrics({})
    assert ev.decision.reason is Reason.NO_METRICS and event_worthy(ev, None)
    event = event_body(BODY, ev, NOW)
    assert event["type"] == "Normal"
    assert event["message"].startswith("waiting for the first metrics of 1 ready pod(s)")
    assert "scrapeFailures" not in event["message"]


def test_no_metrics_because_scrapes_fail_is_a_warning_naming_them() -> None:
    event = event_body(BODY, no_metrics({"chat-0": "HTTP 500"}), NOW)
    assert event["type"] == "Warning"
    assert event["message"].endswith("scrapeFailures=[chat-0: HTTP 500]")


def test_a_hand_set_replica_count_that_is_changed_back_is_explained() -> None:
    ev = evaluation(12, 0.8)  # kubectl scale --replicas=12 beyond maxReplicas 10
    assert ev.decision.desired_replicas == 10
    event = override_event(BODY, ev, (2, 2), (1, 10), NOW)
    assert event is not None and event["type"] == "Warning"
    assert event["reason"] == "ScaleOverridden"
    assert event["message"].startswith(
        "spec.replicas 12 was set by hand; the autoscaler owns replicas between "
        "minReplicas (1) and maxReplicas (10) and sets 10 (ScaleToMaxReplicas)."
    )
    assert "set autoscaling.minReplicas = maxReplicas" in event["message"]


@pytest.mark.parametrize(
    ("current", "last_write"),
    [
        pytest.param(12, None, id="first evaluation: nothing to compare with"),
        pytest.param(12, (12, 10), id="the cache still shows the count before our write"),
        pytest.param(10, (12, 10), id="our own write"),
    ],
)
def test_no_override_event_for_our_own_counts(current: int, last_write) -> None:
    assert override_event(BODY, evaluation(current, 0.8), last_write, (1, 10), NOW) is None


def test_a_hand_set_count_the_autoscaler_keeps_posts_nothing() -> None:
    ev = evaluation(3, 0.8)  # within bounds and steady: the hand-set count stays
    assert not ev.scales
    assert override_event(BODY, ev, (2, 2), (1, 10), NOW) is None
