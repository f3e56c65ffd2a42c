"""Every Kubernetes permission the operator needs: the single list the Helm ClusterRole must match.

Why a declared list: least privilege is only checkable against a statement of what the code
does. ``tests/helm/test_rbac.py`` checks that the chart's ClusterRole grants exactly these
rules (nothing missing, nothing extra) in both watch modes, and the k8s test runs the operator
authenticated as the chart's ServiceAccount, which proves the list is sufficient. Whoever adds
an API call to the operator adds its permission here in the same commit.
"""

from __future__ import annotations

from dataclasses import dataclass

READ = frozenset({"get", "list", "watch"})
APPLY = frozenset({"get", "list", "watch", "create", "patch"})
"""Server-side apply patches existing objects and needs ``create`` for new ones."""


@dataclass(frozen=True)
class Permission:
    """One (apiGroup, resource) pair and the verbs the operator uses on it, with the reason."""

    api_group: str
    resource: str
    verbs: frozenset[str]
    why: str


def operator_permissions(*, clusterwide: bool) -> tuple[Permission, ...]:
    """The permissions of ``sloserve operator``; ``clusterwide`` = watching all namespaces.

    Kopf peers through a ClusterKopfPeering when cluster-wide and through one KopfPeering per
    watched namespace otherwise; it lists namespaces only to discover them when cluster-wide.
    """
    peering = "clusterkopfpeerings" if clusterwide else "kopfpeerings"
    framework = [
        Permission(
            "kopf.dev",
            peering,
            frozenset({"get", "list", "watch", "patch"}),
            "kopf peering: one active replica, keep-alives in the peering status",
        ),
        Permission(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            frozenset({"list", "watch"}),
            "kopf discovers the LLMService CRD",
        ),
        Permission(
            "",
            "events",
            frozenset({"create"}),
            "kopf and the autoscaler post Events on LLMService objects",
        ),
    ]
    if clusterwide:
        framework.append(
            Permission(
                "",
                "namespaces",
                frozenset({"list", "watch"}),
                "kopf discovers namespaces when watching all of them",
            )
        )
    application = [
        Permission(
            "sloserve.io",
            "llmservices",
            frozenset({"get", "list", "watch", "patch"}),
            "watch LLMService objects; kopf keeps its progress in annotations",
        ),
        Permission(
            "sloserve.io",
            "llmservices/status",
            frozenset({"patch"}),
            "report replicas, attainment, pressure, knob revisions, conditions",
        ),
        Permission(
            "apps",
            "deployments",
            APPLY,
            "server-side apply of the engine Deployment; the autoscaler sets replicas",
        ),
        Permission("", "services", APPLY, "server-side apply of the engine Service"),
        Permission("", "configmaps", APPLY, "server-side apply of the live-knobs ConfigMap"),
        Permission(
            "policy",
            "poddisruptionbudgets",
            APPLY,
            "server-side apply of the engine PodDisruptionBudget",
        ),
        Permission(
            "monitoring.coreos.com",
            "servicemonitors",
            APPLY,
            "server-side apply of the engine ServiceMonitor when that CRD exists",
        ),
        Permission("", "pods", READ, "find ready engine pods to push knobs and read metrics"),
        Permission(
            "",
            "secrets",
            frozenset({"get", "create"}),
            "the engines' admin-token Secret, created once per LLMService",
        ),
    ]
    return tuple(framework + application)
