"""The only module that talks to the Kubernetes API (watches are kopf's).

Writes are server-side apply with one field manager, so the operator owns exactly the fields
it renders and users or other controllers may own the rest (extra labels, annotations). Every
request is retried on conflicts (409), throttling (429), server errors and dropped connections
with capped exponential backoff, and counted in ``sloserve_operator_api_requests_total``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from .metrics import OperatorMetrics
from .render.target import MANAGER

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PLURALS = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Service"): "services",
    ("v1", "Secret"): "secrets",
    ("v1", "Event"): "events",
    ("apps/v1", "Deployment"): "deployments",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitors",
    ("sloserve.io/v1alpha1", "LLMService"): "llmservices",
}
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 6


class ApiError(Exception):
    """An API request failed for good; ``status`` 0 means no HTTP answer."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 0.05
    cap_s: float = 2.0
    attempts: int = MAX_ATTEMPTS

    def delay(self, attempt: int) -> float:
        return float(min(self.cap_s, self.base_s * 2**attempt))

    def should_retry(self, status: int, reason: str, attempt: int) -> bool:
        """Transient failures only; a 409 AlreadyExists is an answer, not a conflict."""
        if attempt + 1 >= self.attempts:
            return False
        if status == 409 and reason == "AlreadyExists":
            return False
        return status == 0 or status in RETRY_STATUSES


def collection_path(api_version: str, kind: str, namespace: str) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{PLURALS[(api_version, kind)]}"


def object_path(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    base = collection_path(obj["apiVersion"], obj["kind"], meta["namespace"])
    return f"{base}/{meta['name']}"


def _reason(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("reason", exc.reason or ""))
    except ValueError:
        return str(exc.reason or "")


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", exc.body))
    except ValueError:
        return str(exc.body)


class Kube:
    """Async API access for the reconciler."""

    def __init__(
        self, api: client.ApiClient, metrics: OperatorMetrics, retry: RetryPolicy | None = None
    ) -> None:
        self._api = api
        self._metrics = metrics
        self._retry = retry or RetryPolicy()

    @classmethod
    async def connect(cls, metrics: OperatorMetrics, pool_size: int = 32) -> Kube:
        """In-cluster service account if present, else the current kubeconfig."""
        cfg = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            # Read KUBECONFIG now: the library's default path was fixed when it was imported.
            path = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
            await config.load_kube_config(config_file=path, client_configuration=cfg)
        cfg.connection_pool_maxsize = pool_size
        return cls(client.ApiClient(configuration=cfg), metrics)

    async def close(self) -> None:
        await self._api.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        resource = _resource_of(path)
        attempt = 0
        while True:
            status, reason, message = 0, "", ""
            try:
                result = await self._api.call_api(
                    path,
                    method,
                    query_params=list((query or {}).items()),
                    header_params={"Content-Type": content_type, "Accept": "application/json"},
                    body=body,
                    response_types_map={200: "object", 201: "object", 202: "object"},
                    auth_settings=["BearerToken"],
                    _return_http_data_only=True,
                    _request_timeout=30,
                )
                self._metrics.api_requests.labels(method, resource, "2xx").inc()
                return dict(result or {})
            except ApiException as exc:
                status, reason, message = exc.status, _reason(exc), _message(exc)
            except (TimeoutError, aiohttp.ClientError) as exc:
                message = f"{type(exc).__name__}: {exc}"
            self._metrics.api_requests.labels(method, resource, str(status or "error")).inc()
            if not self._retry.should_retry(status, reason, attempt):
                raise ApiError(status, reason, message)
            log.debug("%s %s: %s %s; retry %d", method, path, status, reason, attempt + 1)
            await asyncio.sleep(self._retry.delay(attempt))
            attempt += 1

    async def apply(self, obj: Mapping[str, Any]) -> Obj:
        """Server-side apply as ``sloserve-operator``, taking over conflicting fields."""
        return await self.request(
            "PATCH",
            object_path(obj),
            body=obj,
            query={"fieldManager": MANAGER, "force": "true"},
            content_type="application/apply-patch+yaml",
        )

    async def create(self, obj: Mapping[str, Any]) -> Obj:
        meta = obj["metadata"]
        path = collection_path(obj["apiVersion"], obj["kind"], meta["namespace"])
        return await self.request("POST", path, body=obj, query={"fieldManager": MANAGER})

    async def get(self, path: str) -> Obj:
        return await self.request("GET", path)

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> Obj:
        """JSON merge patch of the fields the operator owns in ``status``."""
        path = collection_path("sloserve.io/v1alpha1", "LLMService", namespace)
        return await self.request(
            "PATCH",
            f"{path}/{name}/status",
            body={"status": status},
            query={"fieldManager": MANAGER},
            content_type="application/merge-patch+json",
        )

    async def has_api(self, group_version: str, plural: str) -> bool:
        """Whether the cluster serves a resource (e.g. the ServiceMonitor CRD is installed)."""
        try:
            listing = await self.request("GET", f"/apis/{group_version}")
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return any(r.get("name") == plural for r in listing.get("resources", []))

    async def post_event(
        self, involved: Mapping[str, Any], kind: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event on the LLMService; best effort, never fails a reconcile."""
        meta = involved["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:12]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", "sloserve.io/v1alpha1"),
                "kind": involved.get("kind", "LLMService"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": MANAGER},
            "reportingComponent": MANAGER,
            "reportingInstance": MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.create(event)
        except ApiError as exc:
            log.warning("could not post event %s on %s: %s", reason, meta["name"], exc)


def _resource_of(path: str) -> str:
    """The resource segment of a path, for metric labels (bounded cardinality)."""
    parts = [p for p in path.split("/") if p]
    if "namespaces" in parts:
        i = parts.index("namespaces")
        rest = parts[i + 2 :]
        return "/".join([rest[0], *rest[2:3]]) if rest else "namespaces"
    return "discovery"
