"""A small synchronous Kubernetes API client for the dev cluster's own plumbing.

The operator uses kubernetes_asyncio; the control-plane helpers (readiness, node registration,
the process kubelet) are synchronous background work, and plain HTTPS with the admin client
certificate keeps them independent of the code under test.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from sloserve_dev.devcluster.pki import Pki

JsonObj = dict[str, Any]
FIELD_MANAGER = "sloserve-devcluster"


class KubeApiError(RuntimeError):
    """A non-2xx answer; the message carries the API server's own explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def kubeconfig_document(server: str, pki: Pki, context: str = "sloserve-testenv") -> JsonObj:
    """A self-contained kubeconfig (certificates inlined) that kubectl, helm and kopf accept."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": context,
        "clusters": [
            {
                "name": context,
                "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate-data": b64(pki.admin_cert),
                    "client-key-data": b64(pki.admin_key),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": "admin"}}],
    }


def write_kubeconfig(path: Path, server: str, pki: Pki) -> Path:
    path.write_text(yaml.safe_dump(kubeconfig_document(server, pki), sort_keys=False))
    path.chmod(0o600)
    return path


class KubeApi:
    """JSON over HTTPS with the admin client certificate."""

    def __init__(self, server: str, pki: Pki, timeout_s: float = 10.0) -> None:
        self.server = server
        tls = ssl.create_default_context(cafile=str(pki.ca_cert))
        tls.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self._http = httpx.Client(base_url=server, verify=tls, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _check(self, response: httpx.Response) -> JsonObj:
        if response.status_code >= 300:
            try:
                message = str(response.json().get("message", response.text))
            except ValueError:
                message = response.text
            raise KubeApiError(response.status_code, message)
        body: JsonObj = response.json() if response.content else {}
        return body

    def healthy(self, endpoint: str = "/readyz") -> bool:
        try:
            return self._http.get(endpoint, timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str, params: Mapping[str, str] | None = None) -> JsonObj:
        return self._check(self._http.get(path, params=params))

    def create(self, path: str, body: JsonObj) -> JsonObj:
        return self._check(self._http.post(path, json=body))

    def apply(self, path: str, body: JsonObj, field_manager: str = FIELD_MANAGER) -> JsonObj:
        """Server-side apply (the object's own URL), forced: the dev cluster owns these fields."""
        return self._check(
            self._http.patch(
                path,
                content=json.dumps(body),
                params={"fieldManager": field_manager, "force": "true"},
                headers={"Content-Type": "application/apply-patch+yaml"},
            )
        )

    def patch_status(self, path: str, body: JsonObj) -> JsonObj:
        """Strategic-merge patch (conditions merge by type), as a kubelet updates pod status."""
        return self._check(
            self._http.patch(
                path,
                content=json.dumps(body),
                headers={"Content-Type": "application/strategic-merge-patch+json"},
            )
        )

    def delete(self, path: str) -> JsonObj:
        return self._check(self._http.delete(path))

    def watch(self, path: str, params: Mapping[str, str], timeout_s: int = 60) -> Iterator[JsonObj]:
        """Yield watch events until the server ends the stream (after ``timeout_s``)."""
        query = {**params, "watch": "true", "timeoutSeconds": str(timeout_s)}
        with self._http.stream(
            "GET", path, params=query, timeout=httpx.Timeout(10.0, read=timeout_s + 10.0)
        ) as response:
            if response.status_code >= 300:
                response.read()
                self._check(response)
            for line in response.iter_lines():
                if line:
                    event: JsonObj = json.loads(line)
                    yield event
