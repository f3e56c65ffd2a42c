"""The routers' view for the autoscaler: queue depth and requests turned away, per router pod.

Routers are read directly over HTTP, also when engine metrics come from Prometheus: a request
held at zero replicas must wake the service within one tick, not one Prometheus scrape later.

This is also the wake signal of scale to zero. A metric the autoscaler reads was chosen over an
annotation or an Event that routers would write: routers then need no Kubernetes credentials
at all (RBAC stays with the operator, and a data-path pod cannot edit the LLMService), several
routers need no coordination (their queues simply add up), and a router that restarts with
requests queued reports them again on its next read. The cost is latency: at zero replicas the
autoscaler reads routers every second, so a held request waits at most ~1 s plus the engine's
start before scale-up begins.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .decision import RouterSample
from .metrics_source import MetricsEndpoint

QUEUE_DEPTH = "sloserve_router_queue_depth"
REQUESTS = "sloserve_router_requests_total"
"""By ``outcome``: every request a router answered, whatever the answer."""
MISSES = "sloserve_router_slo_misses_total"
"""By ``reason``: requests the router counts as SLO misses without a served answer."""
CAPACITY_MISSES = frozenset({"rejected", "timed_out", "unavailable"})
"""Misses that more engine replicas would have avoided (not client aborts or engine errors)."""


@dataclass(frozen=True)
class RouterReading:
    queued: float
    requests: float
    missed: float


def read_router_exposition(text: str) -> RouterReading:
    """Parse one router's exposition; raises ``ValueError`` if it does not parse."""
    queued = requests = missed = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not math.isfinite(s.value):
                continue
            if s.name == QUEUE_DEPTH:
                queued += s.value
            elif s.name == REQUESTS:
                requests += s.value
            elif s.name == MISSES and s.labels.get("reason") in CAPACITY_MISSES:
                missed += s.value
    return RouterReading(queued, requests, missed)


class RouterView:
    """Sums the router pods' queues and turns their counters into counts since the last read.

    A router read for the first time, or whose counters went back (restart), contributes its
    queue but no counts: its history is not news.
    """

    def __init__(self, client: httpx.AsyncClient, timeout_s: float = 1.0) -> None:
        self._client = client
        self._timeout = timeout_s
        self._last: dict[str, RouterReading] = {}

    async def read(self, routers: Sequence[MetricsEndpoint]) -> RouterSample | None:
        """``None`` when no router answered: then nothing is known, and nothing is idle."""
        for name in set(self._last) - {r.name for r in routers}:
            del self._last[name]
        readings = await asyncio.gather(*(self._one(r) for r in routers))
        answered = [(r.name, x) for r, x in zip(routers, readings, strict=True) if x]
        if not answered:
            return None
        queued = outcomes = missed = 0.0
        for name, now in answered:
            before = self._last.get(name)
            self._last[name] = now
            queued += now.queued
            if before is not None and now.requests >= before.requests:
                outcomes += now.requests - before.requests
                missed += max(0.0, now.missed - before.missed)
        return RouterSample(queued=queued, outcomes=outcomes, missed=missed)

    async def _one(self, router: MetricsEndpoint) -> RouterReading | None:
        try:
            response = await self._client.get(f"{router.url}/metrics", timeout=self._timeout)
            response.raise_for_status()
            return read_router_exposition(response.text)
        except (httpx.HTTPError, ValueError):
            return None
