"""The chart's alerts and dashboard against a real Prometheus (Debian's `prometheus` package).

What runs for real: Prometheus 2.x scraping `sloserve-engine --simulated` (the real engine
server and simulator, serving real completions) and a real registry with the operator's and
autoscaler's metric definitions; promtool checking and unit-testing the rendered rules. What
is set by the test: the operator series' values (the operator's logic is tested elsewhere).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from chartkit import dashboard_exprs, rule_groups, rules
from metric_catalog import operator_registry
from prometheus_client import start_http_server
from promql import parse

from sloserve_dev.devcluster.processes import ManagedProcess

pytestmark = pytest.mark.slow

PROMTOOL_TESTS = Path(__file__).parent / "promtool" / "alerts_test.yaml"
NAMESPACE, SERVICE = "prod", "chat"
DASHBOARD_VARS = {"$namespace": NAMESPACE, "$llmservice": SERVICE, "$__rate_interval": "1m"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{name} missing under CI=true: apt-get install prometheus")
        pytest.skip(f"{name} not installed (Debian: apt-get install prometheus)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _eventually(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


@contextlib.contextmanager
def _process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = ManagedProcess(Path(args[0]).name, args, log)
    try:
        yield proc.popen
    finally:
        proc.stop(grace_s=20)


@pytest.fixture(scope="module")
def rules_dir(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered PrometheusRule's groups as a plain rules file, beside the promtool tests."""
    directory = tmp_path_factory.mktemp("rules")
    (directory / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(helm_bin)}))
    shutil.copy(PROMTOOL_TESTS, directory / PROMTOOL_TESTS.name)
    return directory


def test_promtool_accepts_the_rendered_rules(rules_dir: Path) -> None:
    result = subprocess.run(
        [_tool("promtool"), "check", "rules", str(rules_dir / "rules.yaml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_promtool_unit_tests_of_every_alert_pass(rules_dir: Path) -> None:
    """Each alert fires after its `for` on synthetic series, stays quiet when healthy."""
    result = subprocess.run(
        [_tool("promtool"), "test", "rules", PROMTOOL_TESTS.name],
        capture_output=True, text=True, check=False, cwd=rules_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _drive_engine(url: str) -> None:
    """Real completions: some meet a loose SLO, some miss an impossible one."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(12):
            slo = {"ttft_ms": 60000, "tbt_ms": 60000} if i % 3 else {"ttft_ms": 1, "tbt_ms": 1}
            body = {"prompt": "hello " * 50, "max_tokens": 8, "vllm_xargs": slo}
            assert client.post("/v1/completions", json=body).status_code == 200


def _drive_router(url: str) -> None:
    """Three completions with a loose SLO through the router (placed on the engine)."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(3):
            body = {
                "prompt": "hello " * 50,
                "max_tokens": 8,
                "vllm_xargs": {"ttft_ms": 60000, "tbt_ms": 60000},
            }
            assert client.post("/v1/completions", json=body).status_code == 200


def _serve_operator_metrics(port: int) -> None:
    registry, operator, autoscaler = operator_registry()
    svc = (NAMESPACE, SERVICE)
    autoscaler.desired.labels(*svc).set(2)
    autoscaler.max_replicas.labels(*svc).set(4)
    autoscaler.slo_target.labels(*svc).set(0.95)
    autoscaler.decisions.labels(*svc, "ScaleUpSLO").inc()
    operator.knobs_applied_pods.labels(*svc).set(1)
    operator.reconcile_errors.labels(*svc).inc(0)
    autoscaler.idle.labels(*svc).set(0)
    autoscaler.cold_start.labels(*svc).set(31.5)
    start_http_server(port, addr="127.0.0.1", registry=registry)


class Prometheus:
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=10)

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = self.client.get("/api/v1/query", params={"query": expr}).json()
        assert body["status"] == "success", f"{expr!r}: {body.get('error')}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return self.client.get("/-/ready").status_code == 200
        return False


@pytest.fixture(scope="module")
def prometheus(rules_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    work = tmp_path_factory.mktemp("prometheus")
    engine_port, operator_port, prom_port = _free_port(), _free_port(), _free_port()
    router_port = _free_port()
    engine_url = f"http://127.0.0.1:{engine_port}"
    router_url = f"http://127.0.0.1:{router_port}"
    router_cmd = [
        sys.executable, "-m", "sloserve_engine.router.cli", "--host", "127.0.0.1",
        "--port", str(router_port), "--engines", f"127.0.0.1:{engine_port}",
        "--served-model-name", SERVICE,
    ]  # fmt: skip
    engine_cmd = [
        sys.executable, "-m", "sloserve_engine.server.cli", "--simulated",
        "--host", "127.0.0.1", "--port", str(engine_port), "--served-model-name", SERVICE,
        "--time-scale", "20",
    ]  # fmt: skip
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_dir / "rules.yaml")],
        "scrape_configs": [
            {
                # As the operator's engine ServiceMonitor labels an engine pod.
                "job_name": "engine",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{engine_port}"],
                        "labels": {"namespace": NAMESPACE, "llmservice": SERVICE, "pod": "chat-0"},
                    }
                ],
            },
            {
                # As the operator's ServiceMonitor labels a router pod.
                "job_name": "router",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{router_port}"],
                        "labels": {
                            "namespace": NAMESPACE,
                            "llmservice": SERVICE,
                            "pod": "chat-router-0",
                        },
                    }
                ],
            },
            {
                # As the chart's operator ServiceMonitor does (honorLabels).
                "job_name": "sloserve-operator",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{operator_port}"]}],
            },
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom_cmd = [
        _tool("prometheus"), f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}",
    ]  # fmt: skip
    with _process(engine_cmd, work / "engine.log"), _process(router_cmd, work / "router.log"):
        _eventually(lambda: _healthy(engine_url), "the simulated engine's /sloserve/health")
        _eventually(lambda: _healthy(router_url), "the router's /sloserve/health")
        _serve_operator_metrics(operator_port)
        with _process(prom_cmd, work / "prometheus.log"):
            prom = Prometheus(f"http://127.0.0.1:{prom_port}")
            _eventually(prom.ready, "Prometheus /-/ready")
            _eventually(lambda: len(prom.query("up == 1")) == 3, "all three targets up")
            _drive_engine(engine_url)  # while Prometheus scrapes, so rates are non-zero
            _drive_router(router_url)  # its outcomes and decisions
            _eventually(
                lambda: bool(prom.query("llmservice:sloserve_slo_attainment:ratio >= 0")),
                "the attainment recording rule over the finished requests",
            )
            yield prom


def _healthy(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/sloserve/health", timeout=2).status_code == 200
    return False


def test_every_rule_evaluates_without_error(prometheus: Prometheus, helm_bin: Path) -> None:
    body = prometheus.client.get("/api/v1/rules").json()
    loaded = [r for g in body["data"]["groups"] for r in g["rules"]]
    assert {r["name"] for r in loaded} == {r.get("alert", r.get("record")) for r in rules(helm_bin)}
    _eventually(
        lambda: all(
            r["health"] == "ok"
            for g in prometheus.client.get("/api/v1/rules").json()["data"]["groups"]
            for r in g["rules"]
        ),
        "every rule evaluated once with health ok",
        timeout_s=20,
    )


def test_recorded_attainment_and_target_come_from_the_scraped_series(
    prometheus: Prometheus,
) -> None:
    (attainment,) = prometheus.query("llmservice:sloserve_slo_attainment:ratio")
    assert attainment["metric"] == {
        "__name__": "llmservice:sloserve_slo_attainment:ratio",
        "namespace": NAMESPACE,
        "llmservice": SERVICE,
    }

    def attained() -> float:
        (sample,) = prometheus.query("llmservice:sloserve_slo_attainment:ratio")
        return float(sample["value"][1])

    # 8 of 12 requests to the engine had a loose SLO, 4 an impossible one, and 3 more with a
    # loose SLO came through the router: once every finished request is scraped the ratio is
    # 11/15 (give or take rate() extrapolation at the window's edges).
    _eventually(lambda: 0.6 < attained() < 0.85, "attainment near 11/15", 30)
    (target,) = prometheus.query("llmservice:sloserve_slo_target:ratio")
    assert float(target["value"][1]) == 0.95  # the autoscaler's target wins over the default


def _selectors(expr: str) -> list[str]:
    out = []
    for sel in parse(expr).selectors:
        matchers = ",".join(f'{m.label}{m.op}"{m.value}"' for m in sel.matchers)
        out.append(f"{sel.metric}{{{matchers}}}" if matchers else sel.metric)
    return out


def _substitute(expr: str) -> str:
    for var, value in DASHBOARD_VARS.items():
        expr = expr.replace(var, value)
    return expr


def test_every_series_a_rule_reads_exists_in_the_scrape(
    prometheus: Prometheus, helm_bin: Path
) -> None:
    recorded = {r["record"] for r in rules(helm_bin) if "record" in r}
    for rule in rules(helm_bin):
        for selector in _selectors(rule["expr"]):
            if selector.split("{")[0] not in recorded:
                assert prometheus.query(selector), f"no series for {selector} (rule {rule})"


def _has_data(prometheus: Prometheus, query: str) -> bool:
    return bool(prometheus.query(query))


def test_every_dashboard_query_returns_data(prometheus: Prometheus) -> None:
    for expr in dashboard_exprs():
        query = _substitute(expr)
        for selector in _selectors(query):
            assert prometheus.query(selector), f"no series for {selector}"
        # Series born during the test need a second scrape before rate() has two samples.
        _eventually(partial(_has_data, prometheus, query), f"data for {query}", 20)


def test_live_alert_state_follows_the_engine(prometheus: Prometheus) -> None:
    """4 of 12 real requests had an impossible SLO: attainment ~67% < the 95% target."""

    def pending() -> set[str]:
        return {a["metric"]["alertname"] for a in prometheus.query('ALERTS{llmservice="chat"}')}

    _eventually(lambda: "SLOAttainmentBelowTarget" in pending(), "the attainment alert pending")
    # desired 2 < max 4; the one engine pod runs the knobs the operator counted as applied
    assert pending().isdisjoint({"AutoscalerAtMaxReplicasSLOFailing", "SchedulerKnobsNotApplied"})
