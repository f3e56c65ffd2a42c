"""Kopf glue, crate-operator style: thin registrations that hand events to the controller.

Only ``@kopf.on.event`` handlers are used, so kopf never writes progress or diff-base state
onto objects; all decisions live in ``controller.py``. The autoscaler registers its own
handlers on the same (default) registry: ``main.py`` imports
``sloserve_operator.autoscaler.handlers`` when that module exists.
"""

from __future__ import annotations

from typing import Any

import httpx
import kopf

from .api import v1alpha1 as api
from .controller import Controller
from .k8s import Kube
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


@kopf.on.startup()
async def start_controller(memo: kopf.Memo, **_: Any) -> None:
    kube = await Kube.connect(memo.metrics, pool_size=2 * memo.controller_config.workers)
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=256))
    memo.controller = Controller(kube, http, memo.metrics, memo.controller_config)
    memo.controller.start()


@kopf.on.cleanup()
async def stop_controller(memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = getattr(memo, "controller", None)
    if controller is not None:
        await controller.stop()
        await controller.http.aclose()
        await controller.kube.close()


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL, id="llmservice")
def llmservice_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.on_service(event.get("type"), event["object"])


@kopf.on.event("v1", "pods", labels={"app.kubernetes.io/name": ENGINE_NAME}, id="engine-pod")
def pod_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.on_pod(event.get("type"), event["object"])


def _child_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.on_child(event.get("type"), event["object"])


for _group, _version, _plural in CHILD_RESOURCES:
    _gv = f"{_group}/{_version}" if _group else _version
    kopf.on.event(_gv, _plural, labels=CHILD_LABELS, id=f"child-{_plural}")(_child_event)
