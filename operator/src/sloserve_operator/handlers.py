"""Kopf glue, crate-operator style: thin registrations that hand events to the controller.

Handlers are ``async`` on purpose: kopf runs sync handlers in a thread pool, and the
controller's queue belongs to the event loop. Only ``@kopf.on.event`` handlers are used, so
kopf never writes progress or diff-base state onto objects; all decisions live in
``controller.py``. :func:`register` puts them on the registry ``main.serve`` builds; the
autoscaler registers its own (``autoscaler/handlers.py``) on the same registry, explicitly.
"""

from __future__ import annotations

from typing import Any, cast

import kopf

from .api import v1alpha1 as api
from .controller import Controller
from .render import monitor
from .render.target import ENGINE_NAME, MANAGER, ROUTER_NAME
from .runtime import Clients, Runtime

CHILD_LABELS = {"app.kubernetes.io/managed-by": MANAGER}
CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("", "v1", "secrets"),
    ("policy", "v1", "poddisruptionbudgets"),
    (monitor.GROUP, "v1", monitor.PLURAL),  # optional: optional_apis.py
)


POD_NAMES = (ENGINE_NAME, ROUTER_NAME)
"""Pods the operator follows: engines (knobs, metrics, status) and routers (knobs, status)."""
POD_SELECTOR = f"app.kubernetes.io/name in ({','.join(POD_NAMES)})"


def _ours(value: str | None, **_: Any) -> bool:
    return value in POD_NAMES


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Service account in a pod, else $KUBECONFIG read *now* (kopf's default client login
    fixed the kubeconfig path when the library was imported)."""
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
    return info or kopf.login_with_kubeconfig(**kwargs)


def _body(event: kopf.RawEvent) -> dict[str, Any]:
    return cast(dict[str, Any], event["object"])  # a plain JSON object, as the API sent it


class OperatorHandlers:
    """The controller's lifecycle and its watch inputs, bound to one :class:`Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.controller: Controller | None = None

    @property
    def running(self) -> Controller:
        assert self.controller is not None, "the startup handler creates the controller"
        return self.controller

    async def start(self, **_: Any) -> None:
        rt = self.runtime
        rt.clients = await Clients.connect(rt.metrics, rt.config.workers)
        self.controller = Controller(
            rt.clients.kube, rt.clients.http, rt.metrics, rt.config, rt.cache
        )
        self.controller.start()

    async def stop(self, **_: Any) -> None:
        if self.controller is not None:
            await self.controller.stop()
        if self.runtime.clients is not None:
            await self.runtime.clients.close()
            self.runtime.clients = None

    async def llmservice_event(self, event: kopf.RawEvent, **_: Any) -> None:
        self.running.on_service(event.get("type"), _body(event))

    async def pod_event(self, event: kopf.RawEvent, **_: Any) -> None:
        self.running.on_pod(event.get("type"), _body(event))

    async def child_event(self, event: kopf.RawEvent, **_: Any) -> None:
        self.running.on_child(event.get("type"), _body(event))


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> OperatorHandlers:
    handlers = OperatorHandlers(runtime)
    kopf.on.login(registry=registry)(login)
    kopf.on.startup(registry=registry, id="start-controller")(handlers.start)
    kopf.on.cleanup(registry=registry, id="stop-controller")(handlers.stop)
    kopf.on.event(api.GROUP, api.VERSION, api.PLURAL, registry=registry, id="llmservice")(
        handlers.llmservice_event
    )
    kopf.on.event(
        "v1",
        "pods",
        labels={"app.kubernetes.io/name": _ours},
        registry=registry,
        id="engine-pod",
    )(handlers.pod_event)
    for group, version, plural in CHILD_RESOURCES:
        gv = f"{group}/{version}" if group else version
        kopf.on.event(gv, plural, labels=CHILD_LABELS, registry=registry, id=f"child-{plural}")(
            handlers.child_event
        )
    return handlers
