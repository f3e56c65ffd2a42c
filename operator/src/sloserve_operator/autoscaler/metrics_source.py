"""Where the autoscaler's numbers come from: each ready pod's ``/metrics``, or Prometheus.

Both sources return the same :class:`Scrape`: one :class:`PodSample` per pod that answered
and a reason per pod that did not, so a pod that is slow, restarting or gone costs one missing
sample, never a stalled loop (AIBrix #617). Metric names are imported from the engine
contract (``sloserve_engine.contract.metrics``); the tests read them from a real
``EngineMetrics`` registry, so a rename breaks a test here instead of silently breaking
scaling (AIBrix PR #2057).
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

from sloserve_engine.contract.metrics import ENGINE_INFO, ENGINE_MODES, KV_PRESSURE, QUEUE_LENGTH
from sloserve_engine.contract.metrics import REQUESTS_FINISHED as FINISHED

from .decision import PodSample

ATTAINMENT_WINDOW_S = 60
"""Prometheus source: ``increase()`` range for the attainment ratio."""


@dataclass(frozen=True)
class MetricsEndpoint:
    """A ready engine pod and the base URL of its HTTP port."""

    name: str
    url: str


@dataclass(frozen=True)
class Scrape:
    samples: tuple[PodSample, ...]
    failures: Mapping[str, str] = field(default_factory=dict)
    """Pod name -> why it gave no sample (timeout, HTTP status, unparsable text)."""


class MetricsSource(Protocol):
    async def scrape(self, pods: Sequence[MetricsEndpoint]) -> Scrape: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class PodReading:
    """The numbers the autoscaler reads from one exposition."""

    kv_pressure: float | None
    attained: float
    finished: float
    waiting: float = 0.0
    running: float = 0.0
    mode: str | None = None
    """``mode`` of ``sloserve_engine_info`` (one of ``ENGINE_MODES``); None if absent."""


def read_exposition(text: str) -> PodReading:
    """Parse one pod's Prometheus text exposition; raises ``ValueError`` if it does not parse."""
    kv: float | None = None
    mode: str | None = None
    attained = finished = waiting = running = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == ENGINE_INFO and s.value == 1 and s.labels.get("mode") in ENGINE_MODES:
                mode = s.labels["mode"]
            elif s.name == KV_PRESSURE:
                kv = _finite(s.value)
            elif s.name == FINISHED and math.isfinite(s.value):
                finished += s.value
                attained += s.value if s.labels.get("attained") == "true" else 0.0
            elif s.name == QUEUE_LENGTH and math.isfinite(s.value):
                if s.labels.get("queue") == "running":
                    running += s.value
                else:
                    waiting += s.value
    return PodReading(kv, attained, finished, waiting, running, mode)


class RecentAttainment:
    """Turns each pod's finished-request counters into the attainment of the requests that
    finished since the previous read.

    The engine's ``sloserve_slo_attainment_ratio`` gauge covers a 60 s sliding window: after a
    scale-up it keeps reporting the old failures for a minute, and in the first bench run an
    autoscaler steering by it kept adding replicas after the load had already dropped. Counter
    deltas see what finishes now. A pod read for the first time, or whose counters went back
    (restart), has no attainment yet; one that finished nothing since has none either.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def sample(self, pod: str, text: str) -> PodSample:
        reading = read_exposition(text)
        previous = self._last.get(pod)
        self._last[pod] = (reading.attained, reading.finished)
        busy = reading.waiting + reading.running
        started = reading.finished + reading.running
        if previous is None or reading.finished < previous[1]:
            return PodSample(
                pod, reading.kv_pressure, None, 0.0, busy=busy, started=started, mode=reading.mode
            )
        done = reading.finished - previous[1]
        attainment = (reading.attained - previous[0]) / done if done > 0 else None
        return PodSample(
            pod,
            reading.kv_pressure,
            attainment,
            done,
            busy=busy,
            started=started,
            mode=reading.mode,
        )

    def keep_only(self, pods: Sequence[str]) -> None:
        """Forget pods that are gone, so a long-lived source does not grow without bound."""
        for pod in set(self._last) - set(pods):
            del self._last[pod]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class PodsSource:
    """Scrapes ``GET <pod>/metrics`` of every pod concurrently with a short timeout."""

    def __init__(
        self,
        timeout_s: float = 2.0,
        client: httpx.AsyncClient | None = None,
        parse: Callable[[str, str], PodSample] | None = None,
    ) -> None:
        """``parse`` reads one exposition; by default :class:`RecentAttainment` (stateful)."""
        self._timeout = timeout_s
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient()
        self._recent = RecentAttainment()
        self._parse = parse or self._recent.sample

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def scrape(self, pods: Sequence[MetricsEndpoint]) -> Scrape:
        self._recent.keep_only([p.name for p in pods])
        results = await asyncio.gather(*(self._one(p) for p in pods))
        samples = tuple(r for r in results if isinstance(r, PodSample))
        failures = {p.name: r for p, r in zip(pods, results, strict=True) if isinstance(r, str)}
        return Scrape(samples, failures)

    async def _one(self, pod: MetricsEndpoint) -> PodSample | str:
        try:
            response = await self._client.get(f"{pod.url}/metrics", timeout=self._timeout)
            response.raise_for_status()
            return self._parse(pod.name, response.text)
        except httpx.TimeoutException:
            return f"timed out after {self._timeout:g}s"
        except httpx.HTTPStatusError as exc:
            return f"HTTP {exc.response.status_code}"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except ValueError as exc:  # the exposition did not parse
            return f"unparsable metrics: {exc}"


class PrometheusSource:
    """Instant queries against the Prometheus HTTP API, joined by pod: KV pressure, requests
    held, and attainment as ``increase()`` of the finished-request counters over the last
    minute.

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

    async def scrape(self, pods: Sequence[MetricsEndpoint]) -> Scrape:
        """``pods`` restricts the result to ready pods; Prometheus may still list old ones."""
        finished = f"increase({FINISHED}{{{self._selector}}}[{ATTAINMENT_WINDOW_S}s])"
        attained = (
            f'increase({FINISHED}{{{self._selector},attained="true"}}[{ATTAINMENT_WINDOW_S}s])'
        )
        queries = (
            f"{KV_PRESSURE}{{{self._selector}}}",
            f"sum by (pod) ({attained})",
            f"sum by (pod) ({finished})",
            f"sum by (pod) ({QUEUE_LENGTH}{{{self._selector}}})",
        )
        info = f"{ENGINE_INFO}{{{self._selector}}} == 1"
        try:
            *answers, modes = await asyncio.gather(
                *(self._query(q) for q in queries), self._query(info, label="mode")
            )
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            reason = f"prometheus query failed: {type(exc).__name__}: {exc}"
            return Scrape((), {p.name: reason for p in pods})
        kv, ok, done, queues = answers
        now = time.time()
        samples, failures = [], {}
        for pod in pods:
            if pod.name not in kv and pod.name not in done:
                failures[pod.name] = "no series in prometheus"
                continue
            stamps = [v[0] for v in (kv.get(pod.name), done.get(pod.name)) if v is not None]
            weight = done.get(pod.name, (0.0, 0.0, ""))[1]
            met = ok.get(pod.name, (0.0, 0.0, ""))[1]
            attainment = min(1.0, met / weight) if weight > 0 else None
            busy = queues[pod.name][1] if pod.name in queues else None
            samples.append(
                PodSample(
                    pod.name,
                    kv[pod.name][1] if pod.name in kv else None,
                    attainment,
                    weight,
                    age_s=max(0.0, now - min(stamps)),
                    busy=busy,
                    started=weight + (busy or 0.0),
                    mode=modes[pod.name][2] if pod.name in modes else None,
                )
            )
        return Scrape(tuple(samples), failures)

    async def _query(self, promql: str, label: str = "") -> dict[str, tuple[float, float, str]]:
        """Pod -> (timestamp, value, value of ``label`` or "")."""
        response = await self._client.get(
            self._url, params={"query": promql}, timeout=self._timeout
        )
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise ValueError(body.get("error", "query did not succeed"))
        out: dict[str, tuple[float, float, str]] = {}
        for series in body["data"]["result"]:
            stamp, value = series["value"]
            number = float(value)
            metric = series["metric"]
            if "pod" in metric and math.isfinite(number):
                out[metric["pod"]] = (float(stamp), number, str(metric.get(label, "")))
        return out
