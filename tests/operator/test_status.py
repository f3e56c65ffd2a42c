"""Pure status computation: conditions, transition times, events."""

from __future__ import annotations

from typing import Any

import pytest

from sloserve_operator import status
from sloserve_operator.status import Observed, PodKnobState

REV = 42


def deployment(ready: int, updated: int, total: int, gen: int = 2, seen: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"generation": gen},
        "status": {
            "observedGeneration": seen,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "replicas": total,
        },
    }


def observed(**kw: Any) -> Observed:
    base: dict[str, Any] = {
        "generation": 7,
        "desired_replicas": 2,
        "selector": "a=b",
        "knobs_revision": REV,
        "deployment": deployment(2, 2, 2),
        "pods": [PodKnobState("p0", REV), PodKnobState("p1", REV)],
    }
    return Observed(**{**base, **kw})


def by_type(obs: Observed) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.conditions(obs)}


def test_steady_state_is_available_stable_and_applied() -> None:
    c = by_type(observed())
    assert [c[t]["status"] for t in ("Available", "Progressing", "Degraded", "KnobsApplied")] == [
        "True",
        "False",
        "False",
        "True",
    ]
    assert all(x["observedGeneration"] == 7 for x in c.values())


@pytest.mark.parametrize(
    ("dep", "available", "progressing", "reason"),
    [
        pytest.param(None, "False", "True", "Scaling", id="no-deployment-yet"),
        pytest.param(deployment(0, 1, 1), "False", "True", "Scaling", id="starting"),
        pytest.param(deployment(1, 1, 2), "True", "True", "RollingOut", id="rolling"),
        pytest.param(
            deployment(2, 2, 2, gen=3, seen=2), "True", "True", "Scaling", id="unseen-gen"
        ),
    ],
)
def test_rollout_conditions(
    dep: dict[str, Any] | None, available: str, progressing: str, reason: str
) -> None:
    c = by_type(observed(deployment=dep))
    assert c["Available"]["status"] == available
    assert (c["Progressing"]["status"], c["Progressing"]["reason"]) == (progressing, reason)


def test_rejecting_pod_makes_knobs_applied_false_with_its_message() -> None:
    pods = [PodKnobState("p0", REV), PodKnobState("p1", None, "HTTP 422: bad policy", True)]
    knobs = by_type(observed(pods=pods))["KnobsApplied"]
    assert (knobs["status"], knobs["reason"]) == ("False", "KnobsRejected")
    assert "p1: HTTP 422: bad policy" in knobs["message"]


def test_pending_and_no_pods() -> None:
    pending = by_type(observed(pods=[PodKnobState("p0", REV - 1)]))["KnobsApplied"]
    assert (pending["status"], pending["reason"]) == ("False", "Pending")
    none = by_type(observed(pods=[]))["KnobsApplied"]
    assert none["status"] == "Unknown"


def test_problems_degrade() -> None:
    c = by_type(observed(problem=("ApplyFailed", "403 Forbidden")))
    assert (c["Degraded"]["status"], c["Degraded"]["reason"]) == ("True", "ApplyFailed")
    dep = deployment(0, 1, 1)
    dep["status"]["conditions"] = [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": "x",
        }
    ]
    assert by_type(observed(deployment=dep))["Degraded"]["reason"] == "DeploymentFailing"


def test_transition_time_moves_only_on_flip() -> None:
    old = status.operator_status(observed(), {}, "T0", reconciled=True)
    same = status.operator_status(observed(), old, "T1", reconciled=True)
    assert {c["lastTransitionTime"] for c in same["conditions"]} == {"T0"}
    flipped = status.operator_status(
        observed(pods=[PodKnobState("p0", 1)]), old, "T2", reconciled=True
    )
    times = {c["type"]: c["lastTransitionTime"] for c in flipped["conditions"]}
    assert times["KnobsApplied"] == "T2" and times["Available"] == "T0"
    assert not status.differs(same, old)
    assert status.differs(flipped, old)


def test_status_pods_and_generation() -> None:
    obs = observed(pods=[PodKnobState("b", REV), PodKnobState("a", None, "unreachable")])
    st = status.operator_status(obs, {"observedGeneration": 3}, "T", reconciled=False)
    assert st["observedGeneration"] == 3
    assert st["pods"] == [
        {"name": "a", "message": "unreachable"},
        {"name": "b", "message": "", "knobsRevision": REV},
    ]
    assert status.operator_status(obs, {}, "T", reconciled=True)["observedGeneration"] == 7


def test_events_only_on_transitions() -> None:
    start = status.operator_status(observed(deployment=None, pods=[]), {}, "T", reconciled=True)
    up = status.operator_status(observed(), start, "T", reconciled=True)
    events = status.transition_events(start["conditions"], up["conditions"])
    assert {r for _, r, _ in events} == {"Available", "KnobsApplied"}
    assert status.transition_events(up["conditions"], up["conditions"]) == []
    bad = observed(pods=[PodKnobState("p0", None, "HTTP 422: no", True)])
    rejected = status.operator_status(bad, up, "T", reconciled=True)
    events = status.transition_events(up["conditions"], rejected["conditions"])
    assert events == [("Warning", "KnobsRejected", "p0: HTTP 422: no")]


def test_unschedulable_pods_degrade_with_the_schedulers_message() -> None:
    msg = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu"
    c = by_type(observed(desired_replicas=3, unschedulable=[msg]))["Degraded"]
    assert (c["status"], c["reason"]) == ("True", "InsufficientCapacity")
    assert c["message"] == f"{msg}; 1 of 3 replicas pending"


@pytest.mark.parametrize(
    ("engines", "desired", "routers", "available", "reason"),
    [
        pytest.param(2, 2, 2, "True", "MinimumReplicasReady", id="serving"),
        pytest.param(2, 2, 0, "False", "NoReadyRouters", id="no-router"),
        pytest.param(0, 0, 1, "True", "ScaledToZero", id="idle-at-zero"),
        pytest.param(0, 1, 1, "False", "NoReadyReplicas", id="waking"),
    ],
)
def test_with_routers_available_needs_a_router(
    engines: int, desired: int, routers: int, available: str, reason: str
) -> None:
    obs = observed(
        deployment=deployment(engines, engines, engines),
        desired_replicas=desired,
        router_deployment=deployment(routers, routers, 2),
        endpoint="http://chat.ns.svc:8000",
    )
    cond = by_type(obs)["Available"]
    assert (cond["status"], cond["reason"]) == (available, reason)
    assert f"{routers} routers ready" in cond["message"]
    out = status.operator_status(obs, {}, "2026-01-01T00:00:00Z", reconciled=True)
    assert (out["routers"], out["readyRouters"]) == (2, routers)
    assert out["endpoint"] == "http://chat.ns.svc:8000"


def test_without_routers_status_reports_none() -> None:
    out = status.operator_status(observed(), {}, "2026-01-01T00:00:00Z", reconciled=True)
    assert (out["routers"], out["readyRouters"]) == (0, 0)


def test_routers_are_judged_against_the_router_document() -> None:
    pods = [PodKnobState("engine", REV), PodKnobState("router", 7, wanted=7)]
    cond = by_type(observed(pods=pods, router_knobs_revision=7))["KnobsApplied"]
    assert (cond["status"], cond["message"]) == ("True", f"engines run revision {REV}, routers 7")
    behind = [PodKnobState("engine", REV), PodKnobState("router", REV, wanted=7)]
    cond = by_type(observed(pods=behind, router_knobs_revision=7))["KnobsApplied"]
    assert (cond["status"], cond["reason"]) == ("False", "Pending")
    assert "router" in cond["message"]


def test_knobs_applied_event_carries_the_change() -> None:
    pending = status.operator_status(
        observed(pods=[PodKnobState("p0", 1)]), {}, "T", reconciled=True
    )
    done = status.operator_status(
        observed(pods=[PodKnobState("p0", REV)]), pending, "T", reconciled=True
    )
    events = status.transition_events(
        pending["conditions"], done["conditions"], "policy: sloserve → vllm"
    )
    assert (
        "Normal",
        "KnobsApplied",
        f"all pods run revision {REV}; changed policy: sloserve → vllm",
    ) in events
