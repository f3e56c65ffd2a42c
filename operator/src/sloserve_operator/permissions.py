"""Every Kubernetes permission the operator needs: the single list the Helm ClusterRole must match.

Why a declared list: least privilege is only checkable against a statement of what the code
does. ``tests/helm/test_helm_rbac.py`` checks that the chart's ClusterRole grants exactly these
rules (nothing missing, nothing extra) in both watch modes, and cross-checks them against the
code: every resource a kopf handler watches, every kind the renderers produce. The k8s test
runs the operator authenticated as the chart's ServiceAccount, which proves the list
sufficient. Whoever adds an API call to the operator adds its permission here in the same
commit.
"""

from __future__ import annotations

from dataclasses import dataclass

WATCH = frozenset({"list", "watch"})
"""What a kopf ``on.event`` handler or daemon needs on the resource it follows."""
APPLY = WATCH | {"patch", "create"}
"""Server-side apply of a rendered child, watched for drift through a kopf event handler.
An apply PATCH that creates an absent object is authorized as ``create`` too (the real API
server answers 403 without it: tests/helm/test_helm_install.py)."""


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
            WATCH | {"patch"},
            "kopf peering: one active replica, keep-alives written into the peering object",
        ),
        Permission(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            WATCH,
            "kopf discovers the LLMService CRD (and whether the ServiceMonitor CRD exists)",
        ),
        Permission(
            "", "events", frozenset({"create"}), "Events on LLMService objects (kopf, operator)"
        ),
    ]
    if clusterwide:
        framework.append(
            Permission("", "namespaces", WATCH, "kopf discovers namespaces when watching all")
        )
    application = [
        Permission("sloserve.io", "llmservices", WATCH, "kopf follows LLMService objects"),
        Permission(
            "sloserve.io",
            "llmservices/status",
            frozenset({"patch"}),
            "report replicas, attainment, pressure, knob revisions, conditions, lastScale",
        ),
        Permission(
            "sloserve.io",
            "llmservices/scale",
            frozenset({"patch"}),
            "the autoscaler sets spec.replicas through the scale subresource",
        ),
        Permission("apps", "deployments", APPLY, "server-side apply of the engine Deployment"),
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
        Permission(
            "",
            "secrets",
            WATCH | {"get", "create"},
            "the engines' admin-token Secret: created once, read back after a restart",
        ),
        Permission("", "pods", WATCH, "find ready engine pods to push knobs and read metrics"),
    ]
    return tuple(framework + application)
