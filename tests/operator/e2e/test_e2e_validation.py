"""The API server rejects invalid specs with a message naming the field (CRD schema + CEL)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from operator_e2e import ROOT

from sloserve_dev.devcluster.cluster import DevCluster

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(120)]

BAD = [
    pytest.param(
        {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
        "spec.autoscaling.minReplicas",
        id="min>max",
    ),
    pytest.param(
        {"scheduler": {"reservationRatio": 1.5}}, "spec.scheduler.reservationRatio", id="ratio-1.5"
    ),
    pytest.param({"slo": {"ttftMs": -1}}, "spec.slo.ttftMs", id="negative-ttft"),
    pytest.param(
        {"scheduler": {"policy": "fastest"}}, "spec.scheduler.policy", id="unknown-policy"
    ),
    pytest.param(
        {"scheduler": {"chunkMinTokens": 512, "chunkMaxTokens": 128}},
        "spec.scheduler.chunkMinTokens",
        id="chunk-bounds",
    ),
    pytest.param({"engine": {"tensorParallelSize": 4}}, "spec.engine.gpu.count", id="tp>gpus"),
    pytest.param(
        {"autoscaling": {"minReplicas": 0}, "router": {"replicas": 0}},
        "spec.autoscaling.minReplicas",
        id="zero-without-router",
    ),
    pytest.param(
        {"autoscaling": {"minReplicas": 0, "scaleToZeroAfterS": 60}},
        "spec.autoscaling.scaleToZeroAfterS",
        id="idle-window<down-window",
    ),
    pytest.param(
        {"engine": {"simulatedStartupDelayS": 5}},
        "spec.engine.simulatedStartupDelayS",
        id="delay-on-a-real-engine",
    ),
]


@pytest.mark.parametrize(("patch", "field"), BAD)
def test_invalid_spec_is_rejected_naming_the_field(
    k8s: DevCluster, namespace: str, crds: None, patch: dict[str, Any], field: str
) -> None:
    body = yaml.safe_load((ROOT / "docs/examples/llmservice.yaml").read_text())
    body["spec"].update(patch)
    result = k8s.kubectl(
        "apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(body), check=False
    )
    assert result.returncode != 0
    assert field in result.stderr, result.stderr
    gone = k8s.kubectl("get", "llms", "-n", namespace, "-o", "name").stdout
    assert gone.strip() == ""


def test_defaults_are_applied_by_the_api_server(
    k8s: DevCluster, namespace: str, crds: None
) -> None:
    k8s.kubectl("apply", "-n", namespace, "-f", str(ROOT / "docs/examples/llmservice-minimal.yaml"))
    obj = yaml.safe_load(
        k8s.kubectl("get", "llms", "qwen-small", "-n", namespace, "-o", "yaml").stdout
    )
    spec = obj["spec"]
    assert spec["scheduler"]["policy"] == "sloserve"
    assert spec["engine"]["gpu"] == {"count": 1, "resourceName": "nvidia.com/gpu"}
    assert spec["autoscaling"]["minReplicas"] == 1
    assert spec["slo"]["ttftMs"] == 1000
    assert (spec["router"]["replicas"], spec["router"]["coldStartTimeoutS"]) == (2, 300)
    assert spec["autoscaling"]["scaleToZeroAfterS"] == 900


def test_names_that_cannot_name_children_are_rejected(
    k8s: DevCluster, namespace: str, crds: None
) -> None:
    body = yaml.safe_load((ROOT / "docs/examples/llmservice-minimal.yaml").read_text())
    body["metadata"]["name"] = "x" * 60
    result = k8s.kubectl(
        "apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(body), check=False
    )
    assert result.returncode != 0 and "metadata.name" in result.stderr, result.stderr
