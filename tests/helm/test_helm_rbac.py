"""The chart's ClusterRole grants exactly what permissions.py declares, in both watch modes.

permissions.py is in turn checked against the operator's code: every kind the renderers
produce must be appliable. The k8s test (test_helm_install.py) proves the list sufficient by
running the operator with the chart ServiceAccount's token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chartkit import one, render
from prometheus_client import CollectorRegistry

from sloserve_operator.permissions import APPLY, WATCH, operator_permissions
from sloserve_operator.render import children, secret
from sloserve_operator.render.target import Target

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)


def granted(cluster_role: dict[str, Any]) -> set[Grant]:
    out: set[Grant] = set()
    for rule in cluster_role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, f"unexpected keys in {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    out.add((group, resource, verb))
    return out


def declared(*, clusterwide: bool) -> set[Grant]:
    return {
        (p.api_group, p.resource, verb)
        for p in operator_permissions(clusterwide=clusterwide)
        for verb in p.verbs
    }


@pytest.mark.parametrize(
    ("values", "clusterwide"),
    [({}, True), ({"operator.watch.namespaces": ["team-a", "team-b"]}, False)],
    ids=["all-namespaces", "two-namespaces"],
)
def test_cluster_role_grants_exactly_the_declared_permissions(
    helm_bin: Path, values: dict[str, Any], clusterwide: bool
) -> None:
    role = one(render(helm_bin, values), "ClusterRole")
    have, want = granted(role), declared(clusterwide=clusterwide)
    assert have - want == set(), "ClusterRole grants more than the operator uses"
    assert want - have == set(), "ClusterRole lacks permissions the operator uses"


def test_binding_ties_the_role_to_the_operator_service_account(helm_bin: Path) -> None:
    manifests = render(helm_bin)
    binding = one(manifests, "ClusterRoleBinding")
    sa = one(manifests, "ServiceAccount")
    deployment = one(manifests, "Deployment")
    assert binding["roleRef"]["name"] == one(manifests, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": sa["metadata"]["name"],
            "namespace": sa["metadata"]["namespace"],
        }
    ]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_rbac_create_false_renders_no_rbac(helm_bin: Path) -> None:
    kinds = {m["kind"] for m in render(helm_bin, {"rbac.create": False})}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}


def _plural(manifest: dict[str, Any]) -> tuple[str, str]:
    api_version: str = manifest["apiVersion"]
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return group, manifest["kind"].lower() + "s"


def _declared_verbs() -> dict[tuple[str, str], frozenset[str]]:
    return {(p.api_group, p.resource): p.verbs for p in operator_permissions(clusterwide=True)}


def test_every_resource_a_kopf_handler_follows_is_watchable() -> None:
    """Derived from the handlers the operator registers, so a new watch fails here first."""
    from sloserve_operator.main import OperatorOptions, build_registry
    from sloserve_operator.metrics import OperatorMetrics
    from sloserve_operator.runtime import Runtime

    runtime = Runtime(OperatorMetrics(CollectorRegistry()))
    registry = build_registry(OperatorOptions(autoscaler=True), runtime)
    handlers = [*registry._watching.get_all_handlers(), *registry._spawning.get_all_handlers()]
    assert handlers, "no kopf handlers registered"
    perms = _declared_verbs()
    for handler in handlers:
        sel = handler.selector
        assert sel is not None, f"kopf handler {handler.id} follows no resource"
        key = (sel.group or "", sel.plural or sel.any_name or "")
        assert key in perms, f"kopf handler {handler.id} follows {key}, not in permissions.py"
        assert perms[key] >= WATCH, f"{key}: kopf needs list and watch"
        if getattr(handler, "requires_finalizer", False):  # daemons and timers
            assert "patch" in perms[key], f"{key}: kopf patches finalizers for {handler.id}"


def test_every_kind_the_operator_renders_is_appliable() -> None:
    """Derived from the operator's real renderers, so a new child kind fails here first."""
    sample = Target.from_body(
        {
            "metadata": {"name": "svc", "namespace": "ns", "uid": "u-1", "generation": 1},
            "spec": {"model": {"name": "m"}},
        }
    )
    perms = _declared_verbs()
    for manifest in children(sample, with_service_monitor=True):
        key = _plural(manifest)
        assert key in perms, f"{manifest['kind']} is rendered but not in permissions.py"
        assert perms[key] >= APPLY, f"{manifest['kind']}: server-side apply needs {sorted(APPLY)}"
    assert perms[_plural(secret.render(sample, token="t"))] >= {"get", "create"}
