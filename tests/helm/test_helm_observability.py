"""Every PromQL expression the chart ships reads series the engine or operator really export.

Expressions come from the rendered PrometheusRule and the dashboard JSON; series from the
real metric definitions (metric_catalog.py). test_helm_prometheus.py runs the same
expressions against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from chartkit import OPERATIONS_DOC, dashboard, dashboard_exprs, one, render, rules
from metric_catalog import TARGET_LABELS, Series, all_series
from promql import parse

ALERTS = {
    "SLOAttainmentBelowTarget",
    "KVCachePressureSustained",
    "SchedulerKnobsNotApplied",
    "AutoscalerAtMaxReplicasSLOFailing",
    "OperatorReconcileErrors",
    "RouterRejectionRateHigh",
    "RouterStateStale",
}


def check_expr(expr: str, series: dict[str, Series], recorded: set[str]) -> None:
    """Raise AssertionError naming the first unknown metric, label or label value."""
    parsed = parse(expr)
    assert parsed.selectors, f"no series read by {expr!r}"
    known_labels = set(TARGET_LABELS)
    for sel in parsed.selectors:
        if sel.metric in recorded:
            known_labels |= {"namespace", "llmservice"}
            continue
        assert sel.metric in series, f"{sel.metric!r} is exported by neither engine nor operator"
        s = series[sel.metric]
        known_labels |= s.labels
        for m in sel.matchers:
            assert m.label in s.labels | TARGET_LABELS, f"{sel.metric} has no label {m.label!r}"
            seen = s.values.get(m.label)
            if m.op == "=" and seen:
                assert m.value in seen, f"{sel.metric}{{{m.label}}} is never {m.value!r}: {seen}"
    unknown = parsed.grouping_labels - known_labels
    assert not unknown, f"grouping by labels no series has: {sorted(unknown)} in {expr!r}"


@pytest.fixture(scope="module")
def series() -> dict[str, Series]:
    return all_series()


def test_chart_ships_exactly_the_documented_alerts(helm_bin: Path) -> None:
    alerts = {r["alert"] for r in rules(helm_bin) if "alert" in r}
    assert alerts == ALERTS


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_alert_has_duration_severity_summary_and_a_runbook_section(
    helm_bin: Path, alert: str
) -> None:
    (rule,) = [r for r in rules(helm_bin) if r.get("alert") == alert]
    assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert rule["labels"]["severity"] in {"info", "warning", "critical"}
    assert "{{ $labels.llmservice }}" in rule["annotations"]["summary"]
    anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
    assert anchor == alert.lower()
    headings = re.findall(r"^### (\S+)$", OPERATIONS_DOC.read_text(), re.M)
    assert anchor in headings, f"docs/operations.md has no runbook section '### {anchor}'"


def test_every_rule_expression_reads_real_series(helm_bin: Path, series: dict[str, Series]) -> None:
    all_rules = rules(helm_bin)
    recorded = {r["record"] for r in all_rules if "record" in r}
    for rule in all_rules:
        check_expr(rule["expr"], series, recorded)


def test_every_dashboard_expression_reads_real_series(series: dict[str, Series]) -> None:
    for expr in dashboard_exprs():
        check_expr(expr, series, recorded=set())


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("sloserve_kv_usage_percent", "exported by neither"),
        ('sloserve_preemptions_total{mode="evict"}', "never 'evict'"),
        ('sloserve_kv_usage_ratio{slo_class="x"}', "no label 'slo_class'"),
        ("sum by (kind) (sloserve_kv_usage_ratio)", "grouping by labels"),
    ],
)
def test_the_checker_catches_drift(series: dict[str, Series], expr: str, problem: str) -> None:
    with pytest.raises(AssertionError, match=problem):
        check_expr(expr, series, recorded=set())


def test_dashboard_covers_every_concern_of_an_llmservice() -> None:
    used = {s.metric for e in dashboard_exprs() for s in parse(e).selectors}
    concerns = {
        "attainment": {"sloserve_requests_finished_total", "sloserve_slo_attainment_ratio"},
        "TTFT percentiles": {"sloserve_ttft_seconds_bucket"},
        "TBT percentiles": {"sloserve_tbt_seconds_bucket"},
        "KV usage": {"sloserve_kv_usage_ratio"},
        "KV pressure": {"sloserve_kv_pressure_ratio"},
        "preemptions": {"sloserve_preemptions_total"},
        "replicas": {"sloserve_operator_desired_replicas"},
        "scale events": {"sloserve_operator_scale_decisions_total"},
        "knob revision": {"sloserve_knobs_revision", "sloserve_operator_knobs_applied_pods"},
        "router outcomes": {"sloserve_router_requests_total"},
        "router queue": {"sloserve_router_queue_depth"},
        "router state age": {"sloserve_router_state_age_seconds"},
        "scale to zero": {
            "sloserve_operator_idle_seconds",
            "sloserve_operator_last_cold_start_seconds",
        },
    }
    for concern, metrics in concerns.items():
        assert metrics <= used, f"dashboard lacks {concern}: {sorted(metrics - used)}"
    for panel in dashboard()["panels"]:
        assert panel["targets"] and panel["description"], panel["title"]
        for t in panel["targets"]:
            if "{" in t["expr"]:
                assert 'llmservice="$llmservice"' in t["expr"], f"{panel['title']}: not per service"
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_configmap_carries_the_json_unchanged(helm_bin: Path) -> None:
    cm = one(render(helm_bin, {"grafanaDashboard.enabled": True}), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["sloserve-llmservice.json"]) == dashboard()


def test_monitoring_objects_are_optional_and_off_by_default(helm_bin: Path) -> None:
    kinds = {m["kind"] for m in render(helm_bin)}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "ConfigMap"}
    monitor = one(render(helm_bin, {"metrics.serviceMonitor.enabled": True}), "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["honorLabels"] is True  # keep the LLMService's namespace label
