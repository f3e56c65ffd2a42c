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
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from prometheus_client import CollectorRegistry, start_http_server

from sloserve_engine.contract.slo import SLO
from sloserve_engine.telemetry.metrics import EngineMetrics, FinishedRequest
from sloserve_operator.autoscaler.metrics_source import (
    MetricsEndpoint,
    PodsSource,
    PrometheusSource,
    RecentAttainment,
    read_exposition,
)

SLO1S = SLO(ttft_ms=1000, tbt_ms=1000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _finish(m: EngineMetrics, now: float, ttft: float) -> None:
    m.record_finish(FinishedRequest(SLO1S, now - 2.0, now - 2.0 + ttft, now, 11, 10, 0.05), now)


@pytest.fixture
def engine_pod() -> Iterator[tuple[EngineMetrics, MetricsEndpoint]]:
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry=registry, window_s=60.0, mode="simulated")
    port = _free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield metrics, MetricsEndpoint("engine-0", f"http://127.0.0.1:{port}")
    server.shutdown()
    thread.join(5)


class _Slow(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(5.0)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_pod() -> Iterator[MetricsEndpoint]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True  # shutdown does not wait for the sleeping handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield MetricsEndpoint("engine-slow", f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()


async def test_attainment_of_requests_finished_since_the_last_read(engine_pod) -> None:
    metrics, pod = engine_pod
    now = time.time()
    metrics.kv_pressure.set(1.25)
    for ttft in (0.1, 5.0):  # finished before the first read: history, not a measurement
        _finish(metrics, now, ttft)
    source = PodsSource(timeout_s=2.0)
    try:
        first = await source.scrape([pod])
        for ttft in (0.1, 0.2, 0.3, 5.0):  # the last misses its 1 s TTFT target
            _finish(metrics, now, ttft)
        second = await source.scrape([pod])
        third = await source.scrape([pod])
    finally:
        await source.aclose()
    assert first.failures == {}
    assert [(s.kv_pressure, s.attainment) for s in first.samples] == [(1.25, None)]
    (sample,) = second.samples
    assert (sample.attainment, sample.finished_requests) == (0.75, 4)
    (idle,) = third.samples  # nothing finished since: no vote, whatever the 60 s window says
    assert (idle.attainment, idle.finished_requests) == (None, 0)


async def test_requests_held_and_started_for_idle_and_cold_start(engine_pod) -> None:
    metrics, pod = engine_pod
    _finish(metrics, time.time(), 0.1)
    metrics.queue_length.labels(queue="waiting", slo_class=SLO1S.slo_class).set(2)
    metrics.queue_length.labels(queue="running", slo_class=SLO1S.slo_class).set(3)
    source = PodsSource(timeout_s=2.0)
    try:
        (sample,) = (await source.scrape([pod])).samples
    finally:
        await source.aclose()
    assert (sample.busy, sample.started) == (5.0, 4.0)
    assert sample.mode == "simulated"  # sloserve_engine_info, from the engine's own registry


def test_restarted_pod_starts_over() -> None:
    recent = RecentAttainment()
    text = 'sloserve_requests_finished_total{{slo_class="s",attained="{a}"}} {n}\n'
    ten = text.format(a="true", n=10) + text.format(a="false", n=0)
    two = text.format(a="true", n=1) + text.format(a="false", n=1)
    assert recent.sample("p", ten).attainment is None
    assert recent.sample("p", two).attainment is None  # counters went back: a new process
    recent.keep_only([])
    assert recent.sample("p", ten).attainment is None  # forgotten pods start over too


async def test_slow_and_dead_pods_fail_alone(engine_pod, slow_pod) -> None:
    metrics, pod = engine_pod
    metrics.kv_pressure.set(0.5)
    dead = MetricsEndpoint("engine-dead", f"http://127.0.0.1:{_free_port()}")
    source = PodsSource(timeout_s=0.3)
    started = time.monotonic()
    try:
        scrape = await source.scrape([pod, slow_pod, dead])
    finally:
        await source.aclose()
    assert time.monotonic() - started < 4.0  # the slow pod was given up on, not waited for
    assert [s.pod for s in scrape.samples] == ["engine-0"]
    assert scrape.failures["engine-slow"] == "timed out after 0.3s"
    assert scrape.failures["engine-dead"].startswith("ConnectError")


def test_exposition_without_our_metrics_reads_as_nothing() -> None:
    reading = read_exposition("# HELP other x\n# TYPE other gauge\nother 1\n")
    assert (reading.kv_pressure, reading.finished, reading.mode) == (None, 0, None)


def test_engine_info_outside_the_declared_modes_reads_as_no_mode() -> None:
    """The label set is bounded: only ``ENGINE_MODES`` reach the status."""
    assert read_exposition('sloserve_engine_info{mode="vllm"} 1\n').mode == "vllm"
    assert read_exposition('sloserve_engine_info{mode="tpu"} 1\n').mode is None
    assert read_exposition('sloserve_engine_info{mode="vllm"} 0\n').mode is None


def test_unparsable_exposition_raises() -> None:
    with pytest.raises(ValueError):
        read_exposition("sloserve_kv_pressure_ratio not-a-number\n")


# ---- Prometheus HTTP API -------------------------------------------------------------------


class _PromAPI(BaseHTTPRequestHandler):
    """Answers /api/v1/query like Prometheus: vector results with [timestamp, "value"]."""

    series: ClassVar[dict[str, list[tuple[dict[str, str], float, str]]]] = {}
    queries: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)["query"][0]
        self.queries.append(query)
        name = next(n for n in self.series if n in query)
        if 'attained="true"' in query:
            name += ":true"
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
        "sloserve_requests_finished_total": [
            ({"pod": "a"}, now - 2, "12"),
            ({"pod": "b"}, now - 100, "0"),
        ],
        "sloserve_requests_finished_total:true": [({"pod": "a"}, now - 2, "9.6")],
        "sloserve_queue_length": [({"pod": "a"}, now - 2, "3")],
        "sloserve_engine_info": [({**base, "pod": "a", "mode": "vllm"}, now - 2, "1")],
    }
    pods = [MetricsEndpoint(n, "") for n in ("a", "b", "c")]
    source = PrometheusSource(prometheus, "ns", "chat")
    try:
        scrape = await source.scrape(pods)
    finally:
        await source.aclose()
    a, b = scrape.samples
    assert (a.pod, a.kv_pressure, a.finished_requests) == ("a", 0.9, 12.0)
    assert a.attainment == pytest.approx(0.8)
    assert a.age_s == pytest.approx(2, abs=1)
    assert (b.attainment, b.age_s > 90) == (None, True)
    assert (a.busy, a.started, b.busy) == (3.0, 15.0, None)
    assert (a.mode, b.mode) == ("vllm", None)
    assert scrape.failures == {"c": "no series in prometheus"}
    assert (
        'sum by (pod) (increase(sloserve_requests_finished_total{namespace="ns",'
        'llmservice="chat",attained="true"}[60s]))'
    ) in _PromAPI.queries
    assert 'sloserve_engine_info{namespace="ns",llmservice="chat"} == 1' in _PromAPI.queries


async def test_prometheus_down_marks_every_pod_failed() -> None:
    source = PrometheusSource(f"http://127.0.0.1:{_free_port()}", "ns", "chat", timeout_s=0.5)
    try:
        scrape = await source.scrape([MetricsEndpoint("a", "")])
    finally:
        await source.aclose()
    assert scrape.samples == ()
    assert scrape.failures["a"].startswith("prometheus query failed: ConnectError")


async def test_an_error_without_text_is_named_by_its_type() -> None:
    """httpx raises some errors with an empty message; the failure must still say something.
    A transport that raises one stands in for the network here (labelled fake)."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("", request=request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    source = PodsSource(client=client)
    try:
        scrape = await source.scrape([MetricsEndpoint("p", "http://127.0.0.1:1")])
    finally:
        await client.aclose()
    assert scrape.failures == {"p": "ConnectError"}
