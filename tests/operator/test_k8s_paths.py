"""Paths and retry rules of the API client (no cluster needed)."""

from __future__ import annotations

import pytest

from sloserve_operator import k8s


def test_object_paths() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n"}}
    assert k8s.object_path(cm) == "/api/v1/namespaces/n/configmaps/x"
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x", "namespace": "n"},
    }
    assert k8s.object_path(dep) == "/apis/apps/v1/namespaces/n/deployments/x"


@pytest.mark.parametrize(
    ("status", "reason", "attempt", "retry"),
    [
        pytest.param(409, "Conflict", 0, True, id="conflict"),
        pytest.param(409, "AlreadyExists", 0, False, id="exists"),
        pytest.param(429, "TooManyRequests", 2, True, id="throttled"),
        pytest.param(503, "", 0, True, id="unavailable"),
        pytest.param(0, "", 0, True, id="connection"),
        pytest.param(422, "Invalid", 0, False, id="invalid"),
        pytest.param(409, "Conflict", k8s.MAX_ATTEMPTS - 1, False, id="gave-up"),
    ],
)
def test_retry_policy(status: int, reason: str, attempt: int, retry: bool) -> None:
    assert k8s.RetryPolicy().should_retry(status, reason, attempt) is retry


def test_backoff_is_capped() -> None:
    policy = k8s.RetryPolicy(base_s=0.1, cap_s=1.0)
    assert [policy.delay(i) for i in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_resource_label_is_bounded() -> None:
    assert k8s._resource_of("/apis/sloserve.io/v1alpha1/namespaces/n/llmservices/x/status") == (
        "llmservices/status"
    )
    assert k8s._resource_of("/api/v1/namespaces/n/secrets/x") == "secrets"
    assert k8s._resource_of("/apis/monitoring.coreos.com/v1") == "discovery"
