"""The operator's kopf handlers are registered explicitly, per ``serve``, autoscaler included."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from sloserve_operator.main import OperatorOptions, build_registry
from sloserve_operator.metrics import OperatorMetrics
from sloserve_operator.runtime import Runtime


def handler_ids(autoscaler: bool) -> set[str]:
    runtime = Runtime(OperatorMetrics(CollectorRegistry()))
    registry = build_registry(OperatorOptions(autoscaler=autoscaler), runtime)
    activities = registry._activities.get_all_handlers()
    watching = registry._watching.get_all_handlers()
    return {str(h.id) for h in [*activities, *watching]}


def test_the_autoscaler_runs_only_when_registered() -> None:
    with_autoscaler, without = handler_ids(True), handler_ids(False)
    assert {"start-autoscaler", "stop-autoscaler"} <= with_autoscaler
    assert not {"start-autoscaler", "stop-autoscaler"} & without
    assert with_autoscaler - without == {"start-autoscaler", "stop-autoscaler"}


def test_each_serve_gets_its_own_registry() -> None:
    """Before, importing the autoscaler module registered it on kopf's global registry for
    every later operator in the process, --no-autoscaler ones included."""
    assert handler_ids(True) == handler_ids(True)
    assert "llmservice" in handler_ids(False) and "start-controller" in handler_ids(False)
