"""The routers' view, read over real HTTP from real prometheus_client registries."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from sloserve_operator.autoscaler.metrics_source import MetricsEndpoint
from sloserve_operator.autoscaler.router_source import (
    MISSES,
    QUEUE_DEPTH,
    REQUESTS,
    RouterView,
    read_router_exposition,
)


class FakeRouterMetrics:
    """The three router series the autoscaler reads, under their real names."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue = Gauge(QUEUE_DEPTH, "queue", registry=registry)
        self.requests = Counter(
            REQUESTS.removesuffix("_total"), "r", ["outcome"], registry=registry
        )
        self.misses = Counter(MISSES.removesuffix("_total"), "m", ["reason"], registry=registry)

    def outcome(self, outcome: str, miss: bool = False) -> None:
        self.requests.labels(outcome=outcome).inc()
        if miss:
            self.misses.labels(reason=outcome).inc()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def routers() -> Iterator[list[tuple[FakeRouterMetrics, MetricsEndpoint]]]:
    out, servers = [], []
    for i in range(2):
        registry = CollectorRegistry()
        port = _free_port()
        server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
        servers.append((server, thread))
        out.append(
            (FakeRouterMetrics(registry), MetricsEndpoint(f"r{i}", f"http://127.0.0.1:{port}"))
        )
    yield out
    for server, thread in servers:
        server.shutdown()
        thread.join(5)


async def test_queues_add_up_and_counts_are_since_the_last_read(routers) -> None:
    (m0, r0), (m1, r1) = routers
    m0.outcome("finished")  # before the first read: history, not news
    m0.queue.set(2)
    async with httpx.AsyncClient() as client:
        view = RouterView(client)
        first = await view.read([r0, r1])
        m0.outcome("finished")
        m1.outcome("rejected", miss=True)
        m1.outcome("timed_out", miss=True)
        m1.outcome("aborted", miss=True)  # a miss, but not one more replicas would avoid
        m1.queue.set(3)
        second = await view.read([r0, r1])
        third = await view.read([r0, r1])
    assert first is not None and (first.queued, first.outcomes, first.missed) == (2, 0, 0)
    assert second is not None and (second.queued, second.outcomes, second.missed) == (5, 4, 2)
    assert third is not None and (third.outcomes, third.missed) == (0, 0)


async def test_no_router_answering_is_no_view(routers) -> None:
    dead = MetricsEndpoint("gone", f"http://127.0.0.1:{_free_port()}")
    (m0, r0), _ = routers
    m0.queue.set(1)
    async with httpx.AsyncClient() as client:
        view = RouterView(client, timeout_s=0.5)
        assert await view.read([dead]) is None
        sample = await view.read([dead, r0])  # one answering router is enough
    assert sample is not None and sample.queued == 1


def test_exposition_parsing() -> None:
    text = 'sloserve_router_requests_total{{outcome="finished"}} {n}\n'
    assert read_router_exposition(text.format(n=7)).requests == 7
    with pytest.raises(ValueError):
        read_router_exposition("sloserve_router_queue_depth not-a-number\n")
