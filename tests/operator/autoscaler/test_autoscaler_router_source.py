"""The routers' view, read over real HTTP from the router's own ``RouterMetrics`` (the single
definition of the series: a rename breaks this test, not scale to zero)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, start_http_server

from sloserve_engine.router.metrics import Outcome, RouterMetrics
from sloserve_operator.autoscaler.metrics_source import MetricsEndpoint
from sloserve_operator.autoscaler.router_source import RouterView, read_router_exposition


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def routers() -> Iterator[list[tuple[RouterMetrics, MetricsEndpoint]]]:
    out, servers = [], []
    for i in range(2):
        registry = CollectorRegistry()
        port = _free_port()
        server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
        servers.append((server, thread))
        out.append((RouterMetrics(registry), MetricsEndpoint(f"r{i}", f"http://127.0.0.1:{port}")))
    yield out
    for server, thread in servers:
        server.shutdown()
        thread.join(5)


async def test_queues_add_up_and_counts_are_since_the_last_read(routers) -> None:
    (m0, r0), (m1, r1) = routers
    m0.outcome(Outcome.FINISHED)  # before the first read: history, not news
    m0.queue_depth.set(2)
    async with httpx.AsyncClient() as client:
        view = RouterView(client)
        first = await view.read([r0, r1])
        m0.outcome(Outcome.FINISHED)
        m1.outcome(Outcome.REJECTED)
        m1.outcome(Outcome.TIMED_OUT)
        m1.outcome(Outcome.ABORTED)  # a miss, but not one more replicas would avoid
        m1.queue_depth.set(3)
        second = await view.read([r0, r1])
        third = await view.read([r0, r1])
    assert first is not None and (first.queued, first.outcomes, first.missed) == (2, 0, 0)
    assert second is not None and (second.queued, second.outcomes, second.missed) == (5, 4, 2)
    assert third is not None and (third.outcomes, third.missed) == (0, 0)


async def test_no_router_answering_is_no_view(routers) -> None:
    dead = MetricsEndpoint("gone", f"http://127.0.0.1:{_free_port()}")
    (m0, r0), _ = routers
    m0.queue_depth.set(1)
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
