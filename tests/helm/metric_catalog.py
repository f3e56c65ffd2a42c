"""The series the engine, the router and the operator really export, read from their metric
definitions.

Instantiating ``EngineMetrics``, ``RouterMetrics`` and ``OperatorMetrics`` into fresh
registries (instead of listing names here) is the point: when a definition is renamed, the
alert and dashboard tests fail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from sloserve_engine.contract.slo import SLO
from sloserve_engine.router.metrics import RouterMetrics
from sloserve_engine.telemetry.metrics import EngineMetrics, FinishedRequest
from sloserve_operator.autoscaler.metrics import AutoscalerMetrics
from sloserve_operator.metrics import OperatorMetrics

TARGET_LABELS = frozenset(
    {"namespace", "llmservice", "pod", "instance", "job", "service", "endpoint", "container"}
)
"""Labels Prometheus attaches at scrape time (the operator's engine ServiceMonitor relabels
the pod label ``sloserve.io/service`` to ``llmservice``)."""

SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}


@dataclass
class Series:
    """One exported sample name: its labels, and label values seen after real use."""

    name: str
    labels: frozenset[str]
    values: dict[str, set[str]] = field(default_factory=dict)


def _wrappers(owner: object) -> Iterable[MetricWrapperBase]:
    return (v for v in vars(owner).values() if isinstance(v, MetricWrapperBase))


def _series_of(owner: object) -> dict[str, Series]:
    out: dict[str, Series] = {}
    for metric in _wrappers(owner):
        # prometheus_client keeps the label names only privately; there is no public getter.
        labels = frozenset(metric._labelnames)
        kind = str(metric._type)
        extra = frozenset({"le"}) if kind == "histogram" else frozenset()
        for suffix in SUFFIXES[kind]:
            name = metric._name + suffix
            out[name] = Series(name, labels | (extra if suffix == "_bucket" else frozenset()))
    return out


def _observe_values(registry: CollectorRegistry, series: dict[str, Series]) -> None:
    for family in registry.collect():
        for sample in family.samples:
            if sample.name in series:
                for label, value in sample.labels.items():
                    series[sample.name].values.setdefault(label, set()).add(value)


def engine_series() -> dict[str, Series]:
    """Every engine sample name, with label values after one finished request."""
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry=registry, slo_classes=("interactive",), mode="simulated")
    metrics.record_finish(
        FinishedRequest(
            slo=SLO(slo_class="interactive"),
            arrival_time=0.0,
            first_token_time=0.2,
            finish_time=1.0,
            output_tokens=9,
            predicted_output=12,
            max_gap_s=0.1,
        ),
        now=1.0,
    )
    series = _series_of(metrics)
    _observe_values(registry, series)
    return series


def router_series() -> dict[str, Series]:
    """Every router sample name (outcome, reason and state labels are pre-created)."""
    registry = CollectorRegistry()
    series = _series_of(RouterMetrics(registry))
    _observe_values(registry, series)
    return series


def operator_registry() -> tuple[CollectorRegistry, OperatorMetrics, AutoscalerMetrics]:
    """The operator's and the autoscaler's metrics in one registry, as `--metrics-port` serves
    them; prometheus_client raises here if both define the same series."""
    registry = CollectorRegistry()
    return registry, OperatorMetrics(registry=registry), AutoscalerMetrics(registry=registry)


def operator_series() -> dict[str, Series]:
    _, operator, autoscaler = operator_registry()
    return _series_of(operator) | _series_of(autoscaler)


def all_series() -> dict[str, Series]:
    engine, operator, router = engine_series(), operator_series(), router_series()
    clash = (engine.keys() & operator.keys()) | ((engine | operator).keys() & router.keys())
    assert not clash, f"engine, operator and router define the same series: {sorted(clash)}"
    return engine | operator | router
