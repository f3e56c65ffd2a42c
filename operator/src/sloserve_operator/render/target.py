"""The reconcile target: one parsed ``LLMService`` plus the names and labels of its children."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sloserve_engine.contract.pod import ADMIN_DIR as ADMIN_DIR
from sloserve_engine.contract.pod import ADMIN_TOKEN_KEY as ADMIN_TOKEN_KEY
from sloserve_engine.contract.pod import HTTP_PORT as HTTP_PORT
from sloserve_engine.contract.pod import KNOBS_DIR as KNOBS_DIR
from sloserve_engine.contract.pod import KNOBS_FILE as KNOBS_FILE

from ..api import v1alpha1 as api

MANAGER = "sloserve-operator"
ENGINE_NAME = "sloserve-engine"
ROUTER_NAME = "sloserve-router"
"""Console script and ``app.kubernetes.io/name`` of router pods (same image as the engine)."""
SERVICE_LABEL = "sloserve.io/service"
METRICS_LABEL = "sloserve.io/metrics"
"""On the Services whose endpoints the ServiceMonitor scrapes: ``engine`` or ``router``."""
KNOBS_REVISION_ANNOTATION = "sloserve.io/knobs-revision"
ROUTER_KNOBS_REVISION_ANNOTATION = "sloserve.io/router-knobs-revision"
ROUTER_KNOBS_FILE = "router.json"
"""The router knob document, in the same ConfigMap as the engines' (one object, one push)."""


@dataclass(frozen=True)
class Target:
    """What rendering needs to know about one ``LLMService`` object."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: api.LLMServiceSpec

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Target:
        """Parse a watched object; raises ``pydantic.ValidationError`` on a bad spec."""
        meta = body["metadata"]
        return cls(
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            generation=int(meta.get("generation", 0)),
            spec=api.LLMServiceSpec.model_validate(body.get("spec") or {}),
        )

    @property
    def selector(self) -> dict[str, str]:
        """Pod selector: immutable in a Deployment, so only labels that never change."""
        return {"app.kubernetes.io/name": ENGINE_NAME, SERVICE_LABEL: self.name}

    @property
    def selector_string(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.selector.items())

    @property
    def labels(self) -> dict[str, str]:
        return {
            **self.selector,
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/component": "engine",
            "app.kubernetes.io/managed-by": MANAGER,
        }

    @property
    def routed(self) -> bool:
        """Whether a router tier fronts the engines (``spec.router.replicas`` > 0)."""
        return self.spec.router.replicas > 0

    @property
    def router_selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": ROUTER_NAME, SERVICE_LABEL: self.name}

    @property
    def router_labels(self) -> dict[str, str]:
        return {
            **self.router_selector,
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/component": "router",
            "app.kubernetes.io/managed-by": MANAGER,
        }

    @property
    def router_deployment(self) -> str:
        return f"{self.name}-router"

    @property
    def engines_service(self) -> str:
        """The engines' headless Service: routers discover engine pods through its DNS."""
        return f"{self.name}-engines"

    @property
    def endpoint(self) -> str:
        """Where clients send requests: the LLMService's own Service."""
        return f"http://{self.name}.{self.namespace}.svc:{HTTP_PORT}"

    @property
    def knobs_configmap(self) -> str:
        return f"{self.name}-knobs"

    @property
    def admin_secret(self) -> str:
        return f"{self.name}-admin"

    def metadata(
        self, name: str, labels: Mapping[str, str] | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Child metadata: our labels (the engines' unless given) and a controller owner
        reference (garbage collection)."""
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": dict(self.labels if labels is None else labels),
            "ownerReferences": [
                {
                    "apiVersion": api.API_VERSION,
                    "kind": api.KIND,
                    "name": self.name,
                    "uid": self.uid,
                    "controller": True,
                }
            ],
            **extra,
        }
