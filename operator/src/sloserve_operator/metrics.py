"""The reconciler's Prometheus metrics (engine metrics live in ``sloserve_engine.server``).

The autoscaler defines its own series (desired replicas, scale decisions, ...) in
``autoscaler/metrics.py``; both go to the process's default registry, which
``sloserve operator --metrics-port`` serves. Tests may pass their own registry to collect names
without a cluster. Handlers reach the instance as ``Runtime.metrics`` (``runtime.py``).
"""

from __future__ import annotations

import contextlib
import functools

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

SERVICE_LABELS = ("namespace", "llmservice")


class OperatorMetrics:
    """Every operator metric; names are ``sloserve_operator_*`` with unit suffixes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else REGISTRY
        reg = self.registry
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
        with contextlib.suppress(KeyError):
            self.knobs_applied_pods.remove(namespace, name)

    def api_request_count(self) -> float:
        """Total API requests so far (used to measure idle traffic)."""
        return sum(
            sample.value
            for metric in self.api_requests.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )


@functools.cache
def default_metrics() -> OperatorMetrics:
    """The process-wide instance on the default registry (created once)."""
    return OperatorMetrics()
