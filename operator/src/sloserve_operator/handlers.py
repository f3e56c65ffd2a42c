"""Kopf glue, crate-operator style: thin registrations that hand events to the controller.

Handlers are ``async`` on purpose: kopf runs sync handlers in a thread pool, and the
controller's queue belongs to the event loop. Only ``@kopf.on.event`` handlers are used, so
kopf never writes progress or diff-base state onto objects; all decisions live in
``controller.py``. Other handlers reach the controller (and its pod/Deployment caches) as
``memo.runtime.controller``, the metrics as ``memo.runtime.metrics``. The autoscaler registers
its own handlers on the same (default) registry: ``main.py`` imports
``sloserve_operator.autoscaler.handlers`` when that module exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import kopf

from .api import v1alpha1 as api
from .controller import Controller, ControllerConfig
from .k8s import Kube
from .metrics import OperatorMetrics
from .render.target import ENGINE_NAME, MANAGER

CHILD_LABELS = {"app.kubernetes.io/managed-by": MANAGER}
CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("", "v1", "secrets"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("monitoring.coreos.com", "v1", "servicemonitors"),
)


@dataclass
class Runtime:
    """Shared by reference: kopf hands each object a shallow copy of the operator's memo."""

    metrics: OperatorMetrics
    config: ControllerConfig
    controller: Controller | None = None

    @property
    def running(self) -> Controller:
        assert self.controller is not None, "the startup handler creates the controller"
        return self.controller


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Service account in a pod, else $KUBECONFIG read *now* (kopf's default client login
    fixed the kubeconfig path when the library was imported)."""
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
    return info or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def start_controller(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    kube = await Kube.connect(runtime.metrics, pool_size=2 * runtime.config.workers)
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=256))
    runtime.controller = Controller(kube, http, runtime.metrics, runtime.config)
    runtime.controller.start()


@kopf.on.cleanup()
async def stop_controller(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    if runtime.controller is not None:
        await runtime.controller.stop()
        await runtime.controller.http.aclose()
        await runtime.controller.kube.close()


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL, id="llmservice")
async def llmservice_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.running.on_service(event.get("type"), event["object"])


@kopf.on.event("v1", "pods", labels={"app.kubernetes.io/name": ENGINE_NAME}, id="engine-pod")
async def pod_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.running.on_pod(event.get("type"), event["object"])


async def _child_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.running.on_child(event.get("type"), event["object"])


for _group, _version, _plural in CHILD_RESOURCES:
    _gv = f"{_group}/{_version}" if _group else _version
    kopf.on.event(_gv, _plural, labels=CHILD_LABELS, id=f"child-{_plural}")(_child_event)
