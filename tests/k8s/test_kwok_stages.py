"""kwok's pod-ready stage per control plane: probed containers start unready in probe mode."""

from __future__ import annotations

import yaml

from sloserve_dev.devcluster.kwokstages import PROBE_POD_READY, compose_stages, stage_name

DEFAULTS = """---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-initialize
spec: {}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec: {instant: true}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec: {}
"""


def names(text: str) -> list[str]:
    return [d["metadata"]["name"] for d in yaml.safe_load_all(text) if d]


def test_probe_mode_replaces_only_the_pod_ready_stage() -> None:
    out = compose_stages(DEFAULTS, "probe")
    assert sorted(names(out)) == ["node-initialize", "pod-delete", "pod-ready"]
    (ready,) = [d for d in yaml.safe_load_all(out) if d["metadata"]["name"] == "pod-ready"]
    assert "readinessProbe" in ready["spec"]["next"]["statusTemplate"]
    assert "instant" not in ready["spec"]


def test_instant_mode_keeps_kwoks_defaults() -> None:
    out = compose_stages(DEFAULTS, "instant")
    (ready,) = [d for d in yaml.safe_load_all(out) if d["metadata"]["name"] == "pod-ready"]
    assert ready["spec"] == {"instant": True}


def test_the_shipped_stage_is_named_pod_ready() -> None:
    assert stage_name(PROBE_POD_READY.read_text()) == "pod-ready"
