"""`helm lint` and `helm template`: what the chart renders for default and changed values."""

from __future__ import annotations

from pathlib import Path

import pytest
from chartkit import CHART, by_kind, helm, one, render


def test_helm_lint_strict_is_clean_for_defaults_and_every_ci_case(helm_bin: Path) -> None:
    cases = [[], *(["--values", str(f)] for f in sorted((CHART / "ci").glob("*-values.yaml")))]
    assert len(cases) >= 4
    for values in cases:
        result = helm(helm_bin, "lint", "--strict", str(CHART), *values)
        assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout
        assert "[WARNING]" not in result.stdout, result.stdout


def test_defaults_render_the_operator_objects(helm_bin: Path) -> None:
    manifests = render(helm_bin)
    kinds = sorted(m["kind"] for m in manifests)
    assert kinds == [
        "ClusterKopfPeering",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]
    for m in manifests:
        labels = m["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "sloserve"
        assert labels["app.kubernetes.io/instance"] == "sloserve"
        assert labels["helm.sh/chart"] == "sloserve-0.1.0"
        if m["kind"] not in {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}:
            assert m["metadata"]["namespace"] == "sloserve-system"


def test_deployment_runs_two_peered_replicas_safely(helm_bin: Path) -> None:
    manifests = render(helm_bin)
    deployment = one(manifests, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    peering = one(manifests, "ClusterKopfPeering")["metadata"]["name"]
    assert container["args"] == [
        "operator",
        f"--peering={peering}",
        "--all-namespaces",
        "--metrics-port=8080",
        "--liveness-port=8081",
    ]
    assert container["image"] == "sloserve/operator:0.1.0"
    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in (
        container["env"]
    )
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    selector = spec["selector"]["matchLabels"]
    assert one(manifests, "Service")["spec"]["selector"] == selector
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()


def test_namespaced_watch_peers_per_namespace(helm_bin: Path) -> None:
    manifests = render(helm_bin, {"operator.watch.namespaces": ["team-a", "team-b"]})
    peerings = by_kind(manifests, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert not by_kind(manifests, "ClusterKopfPeering")
    args = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    assert "--all-namespaces" not in args


def test_standalone_single_replica_and_refusal_of_unpeered_replicas(helm_bin: Path) -> None:
    single = {"operator.replicaCount": 1, "operator.peering.enabled": False}
    manifests = render(helm_bin, single)
    args = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--standalone" in args
    assert not by_kind(manifests, "ClusterKopfPeering")
    result = helm(
        helm_bin, "template", "x", str(CHART), "--set", "operator.peering.enabled=false",
        check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "several active operators" in result.stderr


@pytest.mark.parametrize(
    ("flag", "field"),
    [
        ("operator.replicaCount=0", "replicaCount"),
        ("operator.image.pullPolicy=Sometimes", "pullPolicy"),
        ("prometheusRule.sloAttainment.defaultTarget=2", "defaultTarget"),
        ("operator.replicas=2", "replicas"),
    ],
)
def test_helm_enforces_the_schema_and_names_the_field(
    helm_bin: Path, flag: str, field: str
) -> None:
    result = helm(helm_bin, "template", "x", str(CHART), "--set", flag, check=False)
    assert result.returncode != 0
    assert field in result.stderr, result.stderr


def test_name_overrides_and_image_digest(helm_bin: Path) -> None:
    manifests = render(
        helm_bin,
        {
            "fullnameOverride": "llm-operator",
            "operator.image.registry": "registry.example:5000",
            "operator.image.digest": "sha256:" + "a" * 64,
        },
    )
    deployment = one(manifests, "Deployment")
    assert deployment["metadata"]["name"] == "llm-operator"
    assert one(manifests, "ServiceAccount")["metadata"]["name"] == "llm-operator"
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example:5000/sloserve/operator@sha256:" + "a" * 64


def test_existing_service_account_is_used_without_rendering_one(helm_bin: Path) -> None:
    manifests = render(helm_bin, {"serviceAccount.create": False, "serviceAccount.name": "mine"})
    assert not by_kind(manifests, "ServiceAccount")
    assert one(manifests, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "mine"
    assert one(manifests, "ClusterRoleBinding")["subjects"][0]["name"] == "mine"


def test_notes_tell_the_next_step(helm_bin: Path) -> None:
    out = helm(helm_bin, "install", "sloserve", str(CHART), "--dry-run=client", "-n", "ops").stdout
    assert "kubectl -n ops rollout status deployment/sloserve" in out
    assert "kubectl apply --server-side -f crds/" in out
