"""The reconcile's plan, without I/O: which children to apply and which pods get the knobs."""

from __future__ import annotations

from typing import Any

from sloserve_operator.cache import PodInfo
from sloserve_operator.knobpush import PushResult
from sloserve_operator.plan import (
    Applied,
    child_name,
    children_to_apply,
    digest,
    knob_plan,
    pod_knob_states,
    pods_on_revision,
)


def obj(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name}, "spec": spec}


def test_only_new_and_changed_children_are_applied_in_render_order() -> None:
    svc, dep, cm = obj("Service", "s"), obj("Deployment", "s", replicas=2), obj("ConfigMap", "k")
    applied = {
        "Service/s": Applied(digest(svc), "1", 0),  # unchanged
        "Deployment/s": Applied(digest(obj("Deployment", "s", replicas=1)), "4", 2),  # changed
    }
    todo = children_to_apply([svc, dep, cm], applied)
    assert [c.name for c in todo] == ["Deployment/s", "ConfigMap/k"]
    assert todo[0].digest == digest(dep) and todo[0].obj is dep


def test_nothing_to_apply_once_everything_was_applied() -> None:
    rendered = [obj("Service", "s"), obj("Secret", "t")]
    applied = {child_name(o): Applied(digest(o), "1", 0) for o in rendered}
    assert children_to_apply(rendered, applied) == []


def test_digest_ignores_key_order_but_not_values() -> None:
    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})


READY = PodInfo("a", "uid-a", "10.0.0.1", True)


def test_knob_plan_pushes_unknown_stale_and_recreated_pods_only() -> None:
    pods = [
        READY,
        PodInfo("b", "uid-b", "10.0.0.2", True),  # runs an old revision
        PodInfo("c", "uid-c2", "10.0.0.3", True),  # re-created under the same name
        PodInfo("d", "uid-d", "10.0.0.4", True),  # never pushed
        PodInfo("e", "uid-e", "", True),  # no IP yet: not serving
        PodInfo("f", "uid-f", "10.0.0.6", False),  # not ready
    ]
    pushed = {
        "a": ("uid-a", PushResult(7)),
        "b": ("uid-b", PushResult(6)),
        "c": ("uid-c1", PushResult(7)),
        "gone": ("uid-g", PushResult(7)),
        "f": ("uid-f", PushResult(7)),
    }
    plan = knob_plan(pods, pushed, 7)
    assert [p.name for p in plan.ready] == ["a", "b", "c", "d"]
    assert [p.name for p in plan.push] == ["b", "c", "d"]
    assert plan.forget == {"gone", "f"}


def test_pods_on_revision_counts_ready_pods_acknowledging_it() -> None:
    pushed = {"a": ("uid-a", PushResult(7)), "b": ("uid-b", PushResult(None, "timed out"))}
    b = PodInfo("b", "uid-b", "10.0.0.2", True)
    assert pods_on_revision([READY, b], pushed, 7) == 1
    assert pods_on_revision([READY, b], pushed, 8) == 0


def test_pod_knob_states_report_serving_pods_and_why_not() -> None:
    pods = [READY, PodInfo("b", "uid-b", "10.0.0.2", True), PodInfo("c", "u", "", False)]
    pushed = {"a": ("uid-a", PushResult(None, "bad token", rejected=True, status=401))}
    states = pod_knob_states(pods, pushed)
    assert [(s.name, s.revision, s.message, s.rejected) for s in states] == [
        ("a", None, "bad token", True),
        ("b", None, "not pushed yet", False),
    ]
