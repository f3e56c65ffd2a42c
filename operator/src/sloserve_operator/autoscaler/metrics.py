"""The autoscaler's own Prometheus metrics, in the operator's registry.

Labels are ``namespace`` and ``llmservice`` so they join the engine series that the
ServiceMonitor relabels from the pod label ``sloserve.io/service``; the chart's alerts use them.
"""

from __future__ import annotations

import contextlib

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from .decision import Decision, ScalingPolicy

_SERVICE = ("namespace", "llmservice")


class AutoscalerMetrics:
    """One instance per registry; the operator process uses the default registry."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.desired = Gauge(
            "sloserve_operator_desired_replicas",
            "Replicas the autoscaler's latest decision asks for.",
            _SERVICE,
            registry=registry,
        )
        self.decisions = Counter(
            "sloserve_operator_scale_decisions",
            "Autoscaler decisions by reason (ScaleUpSLO, Steady, HoldPendingPods, ...).",
            (*_SERVICE, "reason"),
            registry=registry,
        )
        self.pending = Gauge(
            "sloserve_operator_pending_replicas",
            "Engine pods that cannot be scheduled (no free GPU) at the latest decision.",
            _SERVICE,
            registry=registry,
        )
        self.scrape_failures = Counter(
            "sloserve_operator_metrics_scrape_failures",
            "Pod metrics reads that failed (timeout, HTTP error, unparsable, no series).",
            _SERVICE,
            registry=registry,
        )
        self.slo_target = Gauge(
            "sloserve_operator_slo_target_ratio",
            "SLO attainment target the autoscaler steers to.",
            _SERVICE,
            registry=registry,
        )
        self._reasons: set[tuple[str, str, str]] = set()
        self.max_replicas = Gauge(
            "sloserve_operator_max_replicas",
            "Upper replica bound of the autoscaler (spec.autoscaling.maxReplicas).",
            _SERVICE,
            registry=registry,
        )
        self.cold_start = Gauge(
            "sloserve_operator_last_cold_start_seconds",
            "Latest wake from zero replicas: seconds from the scale-up to the first request "
            "served (resolution: one evaluation, 1 s while waking).",
            _SERVICE,
            registry=registry,
        )
        self.idle = Gauge(
            "sloserve_operator_idle_seconds",
            "Seconds since a router last saw a request arrive, queued or running (the scale-to-"
            "zero clock); 0 while requests are in flight.",
            _SERVICE,
            registry=registry,
        )

    def record(
        self,
        namespace: str,
        name: str,
        policy: ScalingPolicy,
        decision: Decision,
        pending: int,
        scrape_failures: int,
        cold_start_s: float | None = None,
    ) -> None:
        self.desired.labels(namespace, name).set(decision.desired_replicas)
        self.decisions.labels(namespace, name, decision.reason.value).inc()
        self._reasons.add((namespace, name, decision.reason.value))
        self.pending.labels(namespace, name).set(pending)
        self.scrape_failures.labels(namespace, name).inc(scrape_failures)
        self.slo_target.labels(namespace, name).set(policy.slo_attainment_target)
        self.max_replicas.labels(namespace, name).set(policy.max_replicas)
        self.idle.labels(namespace, name).set(decision.signals.idle_s)
        if cold_start_s is not None:
            self.cold_start.labels(namespace, name).set(cold_start_s)

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted service's series so dashboards do not show it forever."""
        for metric in (
            self.desired,
            self.pending,
            self.scrape_failures,
            self.slo_target,
            self.max_replicas,
            self.cold_start,
            self.idle,
        ):
            with contextlib.suppress(KeyError):
                metric.remove(namespace, name)
        for labels in [k for k in self._reasons if k[:2] == (namespace, name)]:
            self.decisions.remove(*labels)
            self._reasons.discard(labels)
