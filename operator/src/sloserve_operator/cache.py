"""The operator's one in-memory view of the cluster, built from watch events.

The controller writes it (``controller.py`` turns each kopf event into an entry update); the
autoscaler only reads it, so a scale decision costs no API read and the autoscaler needs
nothing of the controller. Both run on the operator's one event loop, so there is no locking.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .render.target import ROUTER_NAME

Key = tuple[str, str]
"""(namespace, LLMService name)."""


@dataclass(frozen=True)
class PodInfo:
    """One engine pod as its last watch event showed it."""

    name: str
    uid: str
    ip: str
    ready: bool
    unschedulable: str = ""
    """The scheduler's reason when it cannot place the pod (PodScheduled=False)."""


def pod_info(obj: Mapping[str, Any]) -> PodInfo:
    """Ready means Running with condition Ready=True; unschedulable carries PodScheduled=False."""
    meta, st = obj["metadata"], obj.get("status", {})
    conditions = st.get("conditions") or []
    ready = st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )
    unschedulable = next(
        (
            str(c.get("message") or c.get("reason") or "unschedulable")
            for c in conditions
            if c.get("type") == "PodScheduled" and c.get("status") == "False"
        ),
        "",
    )
    return PodInfo(meta["name"], meta.get("uid", ""), st.get("podIP") or "", ready, unschedulable)


def is_router(obj: Mapping[str, Any]) -> bool:
    """Router pods and the router Deployment carry the router's ``app.kubernetes.io/name``."""
    labels = obj.get("metadata", {}).get("labels") or {}
    return bool(labels.get("app.kubernetes.io/name") == ROUTER_NAME)


@dataclass
class ServiceView:
    """One LLMService, its engine and router pods and its Deployments' generation and status."""

    body: dict[str, Any]
    pods: dict[str, PodInfo] = field(default_factory=dict)
    deployment: dict[str, Any] | None = None
    """``{"metadata": {"generation": g}, "status": {...}}``; None until seen or once deleted."""
    routers: dict[str, PodInfo] = field(default_factory=dict)
    """Router pods (``app.kubernetes.io/name=sloserve-router``), apart from the engines."""
    router_deployment: dict[str, Any] | None = None
    """The router Deployment, in the shape of ``deployment``."""


class StateCache:
    """Services by key. Writers: the controller's watch handlers. Readers: anyone."""

    def __init__(self) -> None:
        self._services: dict[Key, ServiceView] = {}

    def get(self, key: Key) -> ServiceView | None:
        return self._services.get(key)

    def keys(self) -> list[Key]:
        """A snapshot: safe to iterate while the watches change the cache."""
        return list(self._services)

    def __contains__(self, key: object) -> bool:
        return key in self._services

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._services)

    def put(self, key: Key, view: ServiceView) -> None:
        self._services[key] = view

    def pop(self, key: Key) -> ServiceView | None:
        return self._services.pop(key, None)
