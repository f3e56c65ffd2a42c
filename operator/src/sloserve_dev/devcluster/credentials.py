"""A pod's API credentials on the dev cluster: a kubeconfig in place of the mounted token.

**Stand-in for the in-cluster service account.** A kubelet mounts a ServiceAccount token at
``/var/run/secrets/kubernetes.io/serviceaccount`` and the pod finds the API through
``KUBERNETES_SERVICE_HOST``; a local process can use neither (no mount namespace, no Service
routing). The process kubelet instead asks the API for a token of the pod's ServiceAccount
(TokenRequest, as a kubelet does for its projected token) and writes a kubeconfig holding that
token and the cluster's CA, passed to the process as ``$KUBECONFIG``. The process therefore has
exactly its ServiceAccount's RBAC rights, as in a cluster, and never the admin certificate.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from sloserve_dev.devcluster.kubeapi import JsonObj, KubeApi
from sloserve_dev.devcluster.pki import Pki

TOKEN_LIFETIME_S = 24 * 3600
"""Lifetime of a pod's token. Not rotated (a kubelet refreshes its projected token at 80 % of
its life): a pod running longer than this loses API access and must be recreated."""


def token_kubeconfig(server: str, ca_pem: bytes, user: str, token: str) -> JsonObj:
    """A kubeconfig that authenticates with a bearer token only."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": user,
        "clusters": [
            {
                "name": "sloserve-testenv",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "sloserve-testenv", "user": user}}],
    }


def write_service_account_kubeconfig(
    api: KubeApi, server: str, pki: Pki, namespace: str, service_account: str, path: Path
) -> Path:
    """Request a token for ``namespace/service_account`` and write its kubeconfig (mode 600).

    Raises KubeApiError (404) while the ServiceAccount does not exist yet.
    """
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": TOKEN_LIFETIME_S},
    }
    answer = api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token", request
    )
    user = f"system:serviceaccount:{namespace}:{service_account}"
    document = token_kubeconfig(server, pki.ca_cert.read_bytes(), user, answer["status"]["token"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(document, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path
