"""The operator's own Prometheus metrics (engine metrics live in ``sloserve_engine.server``).

One instance per running operator with its own registry, so tests can start and stop operators
in one process and collect names without a cluster. ``sloserve operator --metrics-port``
serves it; handlers reach it as ``memo.metrics``.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SERVICE_LABELS = ("namespace", "llmservice")


class OperatorMetrics:
    """Every operator metric; names are ``sloserve_operator_*`` with unit suffixes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.desired_replicas = Gauge(
            "sloserve_operator_desired_replicas",
            "Replicas the Deployment of each LLMService is set to.",
            SERVICE_LABELS,
            registry=reg,
        )
        self.scale_decisions = Counter(
            "sloserve_operator_scale_decisions_total",
            "Autoscaler decisions that changed spec.replicas, by reason.",
            (*SERVICE_LABELS, "reason"),
            registry=reg,
        )
        self.reconcile_errors = Counter(
            "sloserve_operator_reconcile_errors_total",
            "Reconciles that failed and were retried.",
            SERVICE_LABELS,
            registry=reg,
        )
        self.knobs_applied_pods = Gauge(
            "sloserve_operator_knobs_applied_pods",
            "Ready engine pods that run the knob revision the spec asks for.",
            SERVICE_LABELS,
            registry=reg,
        )
        self.api_requests = Counter(
            "sloserve_operator_api_requests_total",
            "Kubernetes API requests the reconciler made (watches excluded), by verb, resource "
            "and HTTP status code.",
            ("verb", "resource", "code"),
            registry=reg,
        )
        self.reconcile_duration = Histogram(
            "sloserve_operator_reconcile_duration_seconds",
            "Time of one reconcile of one LLMService.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=reg,
        )
        self.knob_push_duration = Histogram(
            "sloserve_operator_knob_push_duration_seconds",
            "Time to push one knob document to all ready pods of a service.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
            registry=reg,
        )

    def forget(self, namespace: str, name: str) -> None:
        """Drop the series of a deleted LLMService (no stale gauges)."""
        for gauge in (self.desired_replicas, self.knobs_applied_pods):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)

    def api_request_count(self) -> float:
        """Total API requests so far (used to measure idle traffic)."""
        return sum(
            sample.value
            for metric in self.api_requests.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
