"""Which watch events make the controller reconcile (and which must not: no hot loops)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from sloserve_operator.cache import PodInfo, ServiceView
from sloserve_operator.controller import STATUS_DEBOUNCE_S, Controller
from sloserve_operator.metrics import OperatorMetrics
from sloserve_operator.plan import Applied


@pytest.fixture
def controller() -> Controller:
    # No API server is needed: these tests only feed events and read the work queue.
    return Controller(None, httpx.AsyncClient(), OperatorMetrics(CollectorRegistry()))  # type: ignore[arg-type]


def service(
    generation: int = 1, uid: str = "u1", status: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": "s", "namespace": "ns", "uid": uid, "generation": generation},
        "spec": {"model": {"name": "m"}},
        "status": status or {},
    }


def child(
    kind: str, name: str, rv: str, generation: int | None = None, **extra: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "resourceVersion": rv}
    if generation is not None:
        meta["generation"] = generation
    meta["labels"] = {"sloserve.io/service": "s"}
    return {"kind": kind, "metadata": meta, **extra}


def cached(c: Controller) -> ServiceView:
    """The service's entry in the state cache the controller writes (and the autoscaler reads)."""
    view = c.cache.get(("ns", "s"))
    assert view is not None
    return view


def drain(c: Controller) -> int:
    """How many keys are queued; empties the queue (pending retries stay scheduled)."""
    n = len(c.queue)
    while n and c.queue._queue.qsize():
        c.queue._queue.get_nowait()
    c.queue._queued.clear()
    return n


def test_generation_changes_enqueue_status_only_changes_do_not(controller: Controller) -> None:
    controller.on_service(None, service())
    assert drain(controller) == 1
    controller.states[("ns", "s")].reconciled_generation = 1
    controller.on_service("MODIFIED", service(status={"observedGeneration": 1}))
    assert drain(controller) == 0  # our own status write echoing back
    controller.on_service("MODIFIED", service(generation=2))
    assert drain(controller) == 1


def test_recreated_object_starts_from_scratch(controller: Controller) -> None:
    controller.on_service(None, service())
    st = controller.states[("ns", "s")]
    st.token, st.reconciled_generation = "t", 1
    controller.on_service("ADDED", service(uid="u2"))
    assert controller.states[("ns", "s")].token is None
    controller.on_service("DELETED", service(uid="u2"))
    assert ("ns", "s") not in controller.states
    assert ("ns", "s") not in controller.cache  # the autoscaler stops seeing it too


def test_child_events(controller: Controller) -> None:
    controller.on_service(None, service())
    drain(controller)
    st = controller.states[("ns", "s")]
    st.applied["ConfigMap/s-knobs"] = Applied("d", "10", 0)
    controller.on_child("MODIFIED", child("ConfigMap", "s-knobs", "10"))
    assert drain(controller) == 0  # the echo of our own apply
    controller.on_child("MODIFIED", child("ConfigMap", "s-knobs", "11"))
    assert drain(controller) == 1 and "ConfigMap/s-knobs" not in st.applied  # drift: re-apply
    st.applied["Service/s"] = Applied("d", "5", 0)
    controller.on_child("DELETED", child("Service", "s", "5"))
    assert drain(controller) == 1 and "Service/s" in st.recreate


async def test_deployment_status_changes_enqueue_for_status_debounced(
    controller: Controller,
) -> None:
    controller.on_service(None, service())
    drain(controller)
    st = controller.states[("ns", "s")]
    st.applied["Deployment/s"] = Applied("d", "1", 3)
    dep = child("Deployment", "s", "2", generation=3, status={"readyReplicas": 1})
    controller.on_child("MODIFIED", dep)
    assert drain(controller) == 0 and "Deployment/s" in st.applied  # status only: no re-apply
    await asyncio.sleep(STATUS_DEBOUNCE_S + 0.1)
    assert drain(controller) == 1  # one status reconcile, a moment later
    controller.on_child("MODIFIED", dep)
    await asyncio.sleep(STATUS_DEBOUNCE_S + 0.1)
    assert drain(controller) == 0  # nothing new
    edited = child("Deployment", "s", "3", generation=4, status={"readyReplicas": 1})
    controller.on_child("MODIFIED", edited)
    assert drain(controller) == 1 and "Deployment/s" not in st.applied  # spec edited by someone


def pod(name: str, ready: bool, ip: str = "127.64.0.2", **meta: Any) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": name,
            "labels": {"sloserve.io/service": "s"},
            **meta,
        },
        "status": {"phase": "Running", "podIP": ip, "conditions": conditions},
    }


def test_pod_events(controller: Controller) -> None:
    controller.on_service(None, service())
    drain(controller)
    st = cached(controller)
    controller.on_pod("ADDED", pod("p", ready=False))
    assert drain(controller) == 1
    controller.on_pod("MODIFIED", pod("p", ready=True))
    assert drain(controller) == 1 and st.pods["p"] == PodInfo("p", "p", "127.64.0.2", True)
    controller.on_pod("MODIFIED", pod("p", ready=True))
    assert drain(controller) == 0
    controller.on_pod("MODIFIED", pod("p", ready=True, deletionTimestamp="now"))
    assert drain(controller) == 1 and "p" not in st.pods


def test_unschedulable_pods_are_noted(controller: Controller) -> None:
    controller.on_service(None, service())
    unsched = pod("q", ready=False, ip="")
    unsched["status"] = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "message": "0/2 nodes"}],
    }
    controller.on_pod("ADDED", unsched)
    assert cached(controller).pods["q"].unschedulable == "0/2 nodes"


def test_events_of_unknown_services_are_ignored(controller: Controller) -> None:
    controller.on_pod("ADDED", pod("p", ready=True))
    controller.on_child("DELETED", child("Service", "s", "1"))
    assert drain(controller) == 0


def test_pdb_status_updates_are_not_drift(controller: Controller) -> None:
    controller.on_service(None, service())
    drain(controller)
    st = controller.states[("ns", "s")]
    st.applied["PodDisruptionBudget/s"] = Applied("d", "7", 1)
    controller.on_child("MODIFIED", child("PodDisruptionBudget", "s", "8", generation=1))
    assert drain(controller) == 0 and "PodDisruptionBudget/s" in st.applied
    controller.on_child("MODIFIED", child("PodDisruptionBudget", "s", "9", generation=2))
    assert drain(controller) == 1 and "PodDisruptionBudget/s" not in st.applied
