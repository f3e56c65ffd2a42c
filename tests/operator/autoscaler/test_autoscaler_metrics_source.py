"""Metrics sources against real HTTP servers.

The pods source reads a real ``prometheus_client`` registry filled by the engine's own
``EngineMetrics`` (the single definition of the metric names), served over real HTTP. The
Prometheus source talks to a small HTTP server that answers the Prometheus query API in its
documented JSON shape: a stand-in, because no Prometheus binary can run here.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from sloserve_engine.policy.views import SLOTarget
from sloserve_engine.server.metrics import EngineMetrics, FinishedRequest
from sloserve_operator.autoscaler.metrics_source import (
    PodEndpoint,
    PodsSource,
    PrometheusSource,
    sample_from_exposition,
)

SLO = SLOTarget(ttft_s=1.0, tbt_s=1.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _finish(m: EngineMetrics, now: float, ttft: float) -> None:
    m.record_finish(FinishedRequest(SLO, now - 2.0, now - 2.0 + ttft, now, 11, 10), now)


@pytest.fixture
def engine_pod() -> Iterator[tuple[EngineMetrics, PodEndpoint]]:
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry=registry, window_s=60.0)
    port = _free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield metrics, PodEndpoint("engine-0", f"http://127.0.0.1:{port}")
    server.shutdown()
    thread.join(5)


class _Slow(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(1.0)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_pod() -> Iterator[PodEndpoint]:
    server = HTTPServer(("127.0.0.1", 0), _Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield PodEndpoint("engine-slow", f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()


async def test_pod_with_finished_requests_reports_weighted_attainment(engine_pod) -> None:
    metrics, pod = engine_pod
    now = time.time()
    metrics.kv_pressure.set(1.25)
    for ttft in (0.1, 0.2, 0.3, 5.0):  # the last misses its 1 s TTFT target
        _finish(metrics, now, ttft)
    source = PodsSource(timeout_s=2.0)
    try:
        scrape = await source.scrape([pod])
    finally:
        await source.aclose()
    assert scrape.failures == {}
    (sample,) = scrape.samples
    assert sample.kv_pressure == pytest.approx(1.25)
    assert sample.attainment == pytest.approx(0.75)
    assert sample.finished_requests == 4


async def test_idle_pod_has_pressure_but_no_attainment(engine_pod) -> None:
    """An idle engine reports attainment 1.0 over an empty window: that is not a measurement."""
    metrics, pod = engine_pod
    metrics.kv_pressure.set(0.0)
    source = PodsSource()
    try:
        (sample,) = (await source.scrape([pod])).samples
    finally:
        await source.aclose()
    assert (sample.kv_pressure, sample.attainment, sample.finished_requests) == (0.0, None, 0)


async def test_slow_and_dead_pods_fail_alone(engine_pod, slow_pod) -> None:
    metrics, pod = engine_pod
    metrics.kv_pressure.set(0.5)
    dead = PodEndpoint("engine-dead", f"http://127.0.0.1:{_free_port()}")
    source = PodsSource(timeout_s=0.3)
    started = time.monotonic()
    try:
        scrape = await source.scrape([pod, slow_pod, dead])
    finally:
        await source.aclose()
    assert time.monotonic() - started < 0.9  # concurrent: bounded by one timeout, not three
    assert [s.pod for s in scrape.samples] == ["engine-0"]
    assert scrape.failures["engine-slow"] == "timed out after 0.3s"
    assert scrape.failures["engine-dead"].startswith("ConnectError")


def test_exposition_without_our_metrics_gives_an_empty_sample() -> None:
    sample = sample_from_exposition("p", "# HELP other x\n# TYPE other gauge\nother 1\n")
    assert (sample.kv_pressure, sample.attainment) == (None, None)


def test_unparsable_exposition_raises() -> None:
    with pytest.raises(ValueError):
        sample_from_exposition("p", "sloserve_kv_pressure_ratio not-a-number\n")


# ---- Prometheus HTTP API -------------------------------------------------------------------


class _PromAPI(BaseHTTPRequestHandler):
    """Answers /api/v1/query like Prometheus: vector results with [timestamp, "value"]."""

    series: ClassVar[dict[str, list[tuple[dict[str, str], float, str]]]] = {}
    queries: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)["query"][0]
        self.queries.append(query)
        name = query.split("{", 1)[0]
        result = [
            {"metric": {"__name__": name, **labels}, "value": [stamp, value]}
            for labels, stamp, value in self.series.get(name, [])
        ]
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _PromAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_prometheus_source_joins_series_by_pod(prometheus) -> None:
    now = time.time()
    base = {"namespace": "ns", "llmservice": "chat"}
    _PromAPI.queries = []
    _PromAPI.series = {
        "sloserve_kv_pressure_ratio": [
            ({**base, "pod": "a"}, now - 2, "0.9"),
            ({**base, "pod": "b"}, now - 100, "0.1"),
            ({**base, "pod": "gone"}, now, "5"),
        ],
        "sloserve_slo_attainment_ratio": [
            ({**base, "pod": "a", "kind": "both"}, now - 2, "0.8"),
            ({**base, "pod": "b", "kind": "both"}, now - 100, "1"),
        ],
        "sloserve_slo_window_requests": [
            ({**base, "pod": "a"}, now - 2, "12"),
            ({**base, "pod": "b"}, now - 100, "0"),
        ],
    }
    pods = [PodEndpoint(n, "") for n in ("a", "b", "c")]
    source = PrometheusSource(prometheus, "ns", "chat")
    try:
        scrape = await source.scrape(pods)
    finally:
        await source.aclose()
    a, b = scrape.samples
    assert (a.pod, a.kv_pressure, a.attainment, a.finished_requests) == ("a", 0.9, 0.8, 12.0)
    assert a.age_s == pytest.approx(2, abs=1)
    assert (b.attainment, b.age_s > 90) == (None, True)
    assert scrape.failures == {"c": "no series in prometheus"}
    assert 'sloserve_slo_attainment_ratio{namespace="ns",llmservice="chat",kind="both"}' in (
        _PromAPI.queries
    )


async def test_prometheus_down_marks_every_pod_failed() -> None:
    source = PrometheusSource(f"http://127.0.0.1:{_free_port()}", "ns", "chat", timeout_s=0.5)
    try:
        scrape = await source.scrape([PodEndpoint("a", "")])
    finally:
        await source.aclose()
    assert scrape.samples == ()
    assert scrape.failures["a"].startswith("prometheus query failed: ConnectError")
