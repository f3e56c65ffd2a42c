"""Cluster-side helpers of the chart tests: tokens, operator processes, API probes."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from sloserve_dev.devcluster.cluster import DevCluster
from sloserve_dev.devcluster.eventually import eventually
from sloserve_dev.devcluster.kubeapi import KubeApiError
from sloserve_dev.devcluster.processes import ManagedProcess
from sloserve_operator.permissions import operator_permissions


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get_or_none(k8s: DevCluster, path: str) -> dict[str, Any] | None:
    try:
        return k8s.control_plane.api.get(path)
    except KubeApiError as exc:
        if exc.status == 404:
            return None
        raise


def token_kubeconfig(k8s: DevCluster, namespace: str, sa: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (TokenRequest API), not as admin."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }
    token = k8s.control_plane.api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token", request
    )["status"]["token"]
    admin = yaml.safe_load(Path(k8s.control_plane.env()["KUBECONFIG"]).read_text())
    cluster = admin["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": sa, "user": {"token": token}}],
                "contexts": [{"name": sa, "context": {"cluster": cluster["name"], "user": sa}}],
                "current-context": sa,
            }
        )
    )
    return path


@contextlib.contextmanager
def operator_process(
    kubeconfig: Path, args: list[str], log: Path, pod_id: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`sloserve operator <args>` as its own process, as the pod named ``pod_id`` would run it."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_ID": pod_id}
    argv = [sys.executable, "-m", "sloserve_operator.cli", *args]
    proc = ManagedProcess(f"operator {pod_id}", argv, log, env=env)
    try:
        yield proc.popen
    finally:
        proc.stop(grace_s=30)


HTTP_TO_RBAC_VERB = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update",
                     "DELETE": "delete"}  # fmt: skip
API_REQUEST = re.compile(
    r'^sloserve_operator_api_requests_total\{code="403",resource="(?P<resource>[^"]+)",'
    r'verb="(?P<verb>[A-Z]+)"\} (?P<count>\S+)$'
)


def rbac_denials(
    k8s: DevCluster, metrics_url: str, namespace: str, service_account: str
) -> list[str]:
    """The operator's 403 answers that RBAC really denies for its ServiceAccount.

    A 403 can also come from admission (e.g. creating in a namespace that is being deleted),
    so each one is put to the API server as a SubjectAccessReview for the ServiceAccount.
    """
    groups = {p.resource: p.api_group for p in operator_permissions(clusterwide=True)}
    user = f"system:serviceaccount:{namespace}:{service_account}"
    denied: list[str] = []
    for line in httpx.get(metrics_url, timeout=5).text.splitlines():
        m = API_REQUEST.match(line)
        if not m:
            continue
        resource, _, subresource = m["resource"].partition("/")
        review = k8s.control_plane.api.create(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user,
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
                    "resourceAttributes": {
                        "namespace": namespace,
                        "verb": HTTP_TO_RBAC_VERB[m["verb"]],
                        "group": groups.get(m["resource"], groups.get(resource, "")),
                        "resource": resource,
                        "subresource": subresource,
                    },
                },
            },
        )
        if not review["status"].get("allowed"):
            denied.append(line)
    return denied


def remove_llmservice(k8s: DevCluster, path: str) -> None:
    """Delete an LLMService; release kopf's finalizer if no active operator does it in time.

    Leaving one behind would keep its namespace Terminating and disturb later tests that run
    a cluster-wide operator.
    """
    with contextlib.suppress(KubeApiError):
        k8s.control_plane.api.delete(path)
    try:
        eventually(lambda: get_or_none(k8s, path) is None, f"{path} deleted", 20)
    except TimeoutError:
        namespace, name = path.split("/namespaces/")[1].split("/llmservices/")
        k8s.kubectl(
            "patch", "llmservice", name, "-n", namespace, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}',
        )  # fmt: skip


def deployment(k8s: DevCluster, namespace: str, name: str) -> dict[str, Any]:
    found = get_or_none(k8s, f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    assert found is not None, f"deployment {namespace}/{name} not found"
    return found
