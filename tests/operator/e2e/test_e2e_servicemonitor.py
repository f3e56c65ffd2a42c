"""A ServiceMonitor is rendered once the Prometheus operator's CRD exists in the cluster."""

from __future__ import annotations

import pytest
import yaml
from operator_e2e import OperatorThread, apply, sample, wait_condition

from sloserve_dev.devcluster.cluster import DevCluster
from sloserve_dev.devcluster.eventually import eventually

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(180)]

# The smallest ServiceMonitor CRD (the real one is large); the operator only needs the API.
SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "kind": "ServiceMonitor",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def test_service_monitor_when_its_crd_exists(
    k8s: DevCluster, namespace: str, start_operator: object
) -> None:
    k8s.kubectl("apply", "--server-side", "-f", "-", input_text=yaml.safe_dump(SERVICE_MONITOR_CRD))
    k8s.kubectl("wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com")
    operator: OperatorThread = start_operator()  # type: ignore[operator]
    assert operator
    apply(k8s, namespace, sample("sim", replicas=1))
    wait_condition(k8s, namespace, "sim", "Available")
    path = f"/apis/monitoring.coreos.com/v1/namespaces/{namespace}/servicemonitors/sim"
    monitor = eventually(lambda: k8s.control_plane.api.get(path), "ServiceMonitor sim", 30)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert endpoint["relabelings"][0]["targetLabel"] == "llmservice"
    assert monitor["metadata"]["ownerReferences"][0]["kind"] == "LLMService"
