"""Where the autoscaler's numbers come from: each ready pod's ``/metrics``, or Prometheus.

Both sources return the same :class:`Scrape`: one :class:`PodSample` per pod that answered
and a reason per pod that did not, so a pod that is slow, restarting or gone costs one missing
sample, never a stalled loop (AIBrix #617). Metric names are imported from the engine's
single definition (contract 4): the tests read them from a real ``EngineMetrics`` registry, so
a rename breaks a test here instead of silently breaking scaling (AIBrix PR #2057).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .decision import PodSample

KV_PRESSURE = "sloserve_kv_pressure_ratio"
ATTAINMENT = "sloserve_slo_attainment_ratio"
WINDOW_REQUESTS = "sloserve_slo_window_requests"
"""Requests finished in the attainment window: the weight of a pod's attainment."""


@dataclass(frozen=True)
class PodEndpoint:
    """A ready engine pod and the base URL of its HTTP port."""

    name: str
    url: str


@dataclass(frozen=True)
class Scrape:
    samples: tuple[PodSample, ...]
    failures: Mapping[str, str] = field(default_factory=dict)
    """Pod name -> why it gave no sample (timeout, HTTP status, unparsable text)."""


class MetricsSource(Protocol):
    async def scrape(self, pods: Sequence[PodEndpoint]) -> Scrape: ...

    async def aclose(self) -> None: ...


def sample_from_exposition(pod: str, text: str) -> PodSample:
    """Read one pod's Prometheus text exposition; unusable numbers become ``None``.

    Attainment is ``None`` when the window holds no finished request: the engine then reports
    1.0, which is a placeholder, not a measurement.
    """
    kv: float | None = None
    attainment: float | None = None
    window = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == KV_PRESSURE:
                kv = _finite(s.value)
            elif s.name == ATTAINMENT and s.labels.get("kind") == "both":
                attainment = _finite(s.value)
            elif s.name == WINDOW_REQUESTS:
                window = _finite(s.value) or 0.0
    return PodSample(pod, kv, attainment if window > 0 else None, window)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class PodsSource:
    """Scrapes ``GET <pod>/metrics`` of every pod concurrently with a short timeout."""

    def __init__(
        self,
        timeout_s: float = 2.0,
        client: httpx.AsyncClient | None = None,
        parse: Callable[[str, str], PodSample] = sample_from_exposition,
    ) -> None:
        self._timeout = timeout_s
        self._client = client or httpx.AsyncClient()
        self._parse = parse

    async def aclose(self) -> None:
        await self._client.aclose()

    async def scrape(self, pods: Sequence[PodEndpoint]) -> Scrape:
        results = await asyncio.gather(*(self._one(p) for p in pods))
        samples = tuple(r for r in results if isinstance(r, PodSample))
        failures = {p.name: r for p, r in zip(pods, results, strict=True) if isinstance(r, str)}
        return Scrape(samples, failures)

    async def _one(self, pod: PodEndpoint) -> PodSample | str:
        try:
            response = await self._client.get(f"{pod.url}/metrics", timeout=self._timeout)
            response.raise_for_status()
            return self._parse(pod.name, response.text)
        except httpx.TimeoutException:
            return f"timed out after {self._timeout:g}s"
        except httpx.HTTPStatusError as exc:
            return f"HTTP {exc.response.status_code}"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        except ValueError as exc:  # the exposition did not parse
            return f"unparsable metrics: {exc}"


class PrometheusSource:
    """Instant queries against the Prometheus HTTP API, one per metric, joined by pod.

    Series are selected by the labels the chart's ServiceMonitor attaches (``namespace``,
    ``llmservice``, ``pod``). A sample's age is ``now`` minus its timestamp, so a target
    Prometheus stopped scraping ages out of the decision instead of voting forever.
    """

    def __init__(
        self,
        base_url: str,
        namespace: str,
        service: str,
        timeout_s: float = 2.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/api/v1/query"
        self._selector = f'namespace="{namespace}",llmservice="{service}"'
        self._timeout = timeout_s
        self._client = client or httpx.AsyncClient()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def scrape(self, pods: Sequence[PodEndpoint]) -> Scrape:
        """``pods`` restricts the result to ready pods; Prometheus may still list old ones."""
        queries = {
            KV_PRESSURE: f"{KV_PRESSURE}{{{self._selector}}}",
            ATTAINMENT: f'{ATTAINMENT}{{{self._selector},kind="both"}}',
            WINDOW_REQUESTS: f"{WINDOW_REQUESTS}{{{self._selector}}}",
        }
        try:
            answers = await asyncio.gather(*(self._query(q) for q in queries.values()))
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            reason = f"prometheus query failed: {type(exc).__name__}: {exc}"
            return Scrape((), {p.name: reason for p in pods})
        kv, att, window = answers
        now = time.time()
        samples, failures = [], {}
        for pod in pods:
            if pod.name not in kv and pod.name not in att:
                failures[pod.name] = "no series in prometheus"
                continue
            stamps = [v[0] for v in (kv.get(pod.name), att.get(pod.name)) if v is not None]
            weight = window.get(pod.name, (0.0, 0.0))[1]
            attainment = att[pod.name][1] if pod.name in att and weight > 0 else None
            samples.append(
                PodSample(
                    pod.name,
                    kv[pod.name][1] if pod.name in kv else None,
                    attainment,
                    weight,
                    age_s=max(0.0, now - min(stamps)),
                )
            )
        return Scrape(tuple(samples), failures)

    async def _query(self, promql: str) -> dict[str, tuple[float, float]]:
        response = await self._client.get(
            self._url, params={"query": promql}, timeout=self._timeout
        )
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise ValueError(body.get("error", "query did not succeed"))
        out: dict[str, tuple[float, float]] = {}
        for series in body["data"]["result"]:
            stamp, value = series["value"]
            number = float(value)
            if "pod" in series["metric"] and math.isfinite(number):
                out[series["metric"]["pod"]] = (float(stamp), number)
        return out
