"""Closed-loop autoscaling runs WITHOUT Kubernetes: real simulated engines, real HTTP, our loop.

An :class:`~.fleet.EngineFleet` of ``sloserve-engine --simulated`` processes plays the
Deployment, an open-loop Poisson load generator in its own process plays the clients
(``loadgen.py``: least-in-flight routing, as a gateway would, or, with ``RunConfig.routers``,
real ``sloserve-router`` processes in front: ``routers.py``), and a controller (our
autoscaler, or the HPA-style KV-usage baseline) decides the replica count every interval. A
recorder scrapes every engine's ``/metrics`` to log the episode. Engines run with
``--time-scale S`` (S modelled seconds per wall second); every time here, the trace and the
controllers' windows included, is in modelled seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sloserve_engine.contract import metrics as names
from sloserve_operator.autoscaler.decision import Decision, PodSample, ScalingPolicy
from sloserve_operator.autoscaler.loop import Autoscaler, ReplicaState
from sloserve_operator.autoscaler.metrics_source import MetricsEndpoint, PodsSource
from sloserve_operator.autoscaler.router_source import RouterView, read_router_exposition

from .fleet import EngineFleet
from .loadgen import LoadGenerator, LoadPlan, Served
from .routers import RESOLVE_S, RouterTier
from .trace import Phase, Workload, rate_at

PUBLISH_S = 0.25
"""How often the harness tells the routers (or, without them, the load generator) which
engines are ready, as a headless Service's endpoints would change."""


@dataclass(frozen=True)
class RunConfig:
    time_scale: float = 2.0
    interval_s: float = 5.0
    sample_s: float = 2.5
    engine_args: tuple[str, ...] = ("--kv-tokens", "16384", "--served-model-name", "m")
    base_port: int = 18200
    gpu_limit: int = 1000
    initial_replicas: int = 1
    seed: int = 7
    routers: int = 0
    """Real ``sloserve-router`` processes in front of the engines (0: least-in-flight client)."""
    router_args: tuple[str, ...] = ("--served-model-name", "m")


@dataclass
class Row:
    """One recorder sample (modelled time ``t``)."""

    t: float
    rps: float
    desired: int
    ready: int
    pending: int
    kv_pressure: float | None
    kv_usage: float | None
    attainment: float | None
    """Fleet attainment over the engines' sliding window, weighted by finished requests."""
    attained: float
    missed: float
    """Requests finished since the previous sample that met / missed their SLO, plus the
    requests the routers turned away meanwhile (``turned_away``): misses no engine counted."""
    turned_away: float = 0.0
    """Rejected, timed out in the router queue, or no engine (router outcomes)."""
    outstanding: int = 0
    """Requests sent and not yet answered at the sample."""
    router_queued: float | None = None
    """Requests held in the router queues at the sample (None without routers)."""


@dataclass
class DecisionLog:
    t: float
    current: int
    desired: int
    reason: str
    message: str


@dataclass
class Episode:
    controller: str
    trace: list[Phase]
    config: RunConfig
    workload: Workload = field(default_factory=Workload)
    rows: list[Row] = field(default_factory=list)
    decisions: list[DecisionLog] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    """Requests answered with anything but 200 (a router's 429/503 included)."""
    requests: list[Served] = field(default_factory=list)
    """Each request's outcome as the client saw it; requests still in flight at the end of
    the trace are not recorded (the harness ended them, not the service)."""
    sent_at: list[float] = field(default_factory=list)
    """When the load generator sent each request: compared with the plan per bucket."""
    cold_starts: list[float] = field(default_factory=list)
    """Cold starts the autoscaler measured (wake from zero to the first request served)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ScalingController(Protocol):
    name: str

    async def decide(
        self, fleet: EngineFleet, routers: tuple[MetricsEndpoint, ...]
    ) -> Decision: ...

    async def aclose(self) -> None: ...


def kv_usage_sample(pod: str, text: str) -> PodSample:
    """The baseline's view of a pod: KV usage only, no queue, no SLO."""
    usage = None
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == names.KV_USAGE:
                usage = s.value
    return PodSample(pod, usage, None, 0.0)


class SloAutoscaler:
    """Our autoscaler, exactly as the operator runs it (same loop, same pods source)."""

    name = "sloserve"
    reads_routers = True
    """With a router tier: the routers' view (queue, requests turned away) as the operator
    reads it."""

    def __init__(self, policy: ScalingPolicy, clock: Callable[[], float]) -> None:
        self._policy = policy
        self._loop = Autoscaler(clock=clock)
        self._source = PodsSource(timeout_s=2.0)
        self._client = httpx.AsyncClient()
        self._routers = RouterView(self._client)

    async def decide(self, fleet: EngineFleet, routers: tuple[MetricsEndpoint, ...]) -> Decision:
        state = ReplicaState(
            "bench",
            self.name,
            fleet.desired,
            fleet.endpoints(),
            fleet.pending,
            ready_routers=routers if self.reads_routers else (),
        )
        evaluation = await self._loop.evaluate(self._policy, state, self._source, self._routers)
        return evaluation.decision

    async def aclose(self) -> None:
        await self._source.aclose()
        await self._client.aclose()


class KvUsageBaseline(SloAutoscaler):
    """HPA with its default behaviour on average KV usage: ``ceil(ready * usage / target)``,
    tolerance 0.1, no scale-up window, 300 s scale-down window, up by max(4, 100%) and down by
    up to 100% per decision. The same decision code with attainment withheld and usage in
    place of pressure, so the two differ only in their signals."""

    name = "hpa-kv-usage"
    reads_routers = False

    def __init__(self, target: float, clock: Callable[[], float]) -> None:
        super().__init__(
            ScalingPolicy(
                kv_pressure_target=target,
                scale_up_stabilization_s=0,
                scale_down_stabilization_s=300,
                scale_up_max_step=4,
                scale_down_max_step=1000,
                max_replicas=10,
            ),
            clock,
        )
        self._source = PodsSource(timeout_s=2.0, parse=kv_usage_sample)


def _scrape_text(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == names.REQUESTS_FINISHED:
                key = f"finished_{s.labels.get('attained')}"
                out[key] = out.get(key, 0.0) + s.value
            elif s.name == names.SLO_ATTAINMENT and s.labels.get("kind") == "both":
                out["attainment"] = s.value
            elif s.name in (
                names.KV_PRESSURE,
                names.KV_USAGE,
                names.SLO_WINDOW_REQUESTS,
            ):
                out[s.name] = s.value
    return out


class Recorder:
    def __init__(self) -> None:
        self._client = httpx.AsyncClient(timeout=2.0)
        self._last: dict[str, tuple[float, float]] = {}
        self._turned_away: dict[str, float] = {}

    async def _routers(self, routers: Sequence[str]) -> tuple[float, float | None]:
        """Requests the routers rejected, timed out or found no engine for since last time,
        and the requests they hold now (None without routers)."""
        texts = await asyncio.gather(
            *(self._client.get(f"{u}/metrics") for u in routers), return_exceptions=True
        )
        total, queued = 0.0, None
        for url, resp in zip(routers, texts, strict=True):
            if isinstance(resp, BaseException) or resp.status_code != 200:
                continue
            reading = read_router_exposition(resp.text)
            total += reading.missed - self._turned_away.get(url, 0.0)
            self._turned_away[url] = reading.missed
            queued = (queued or 0.0) + reading.queued
        return total, queued

    async def sample(
        self,
        fleet: EngineFleet,
        now: float,
        rps: float,
        routers: Sequence[str] = (),
        outstanding: int = 0,
    ) -> Row:
        replicas = [r for r in fleet.replicas if r.ready]
        texts = await asyncio.gather(
            *(self._client.get(f"{r.url}/metrics") for r in replicas), return_exceptions=True
        )
        values = []
        attained = missed = 0.0
        for replica, resp in zip(replicas, texts, strict=True):
            if isinstance(resp, BaseException) or resp.status_code != 200:
                continue
            v = _scrape_text(resp.text)
            values.append((replica.draining, v))
            ok, bad = v.get("finished_true", 0.0), v.get("finished_false", 0.0)
            prev_ok, prev_bad = self._last.get(replica.name, (0.0, 0.0))
            attained += ok - prev_ok
            missed += bad - prev_bad
            self._last[replica.name] = (ok, bad)
        turned_away, queued = await self._routers(routers)
        serving = [v for draining, v in values if not draining]
        weight = sum(v.get(names.SLO_WINDOW_REQUESTS, 0.0) for _, v in values)
        return Row(
            t=now,
            rps=rps,
            desired=fleet.desired,
            ready=len(fleet.ready()),
            pending=fleet.pending,
            kv_pressure=_mean([v.get(names.KV_PRESSURE) for v in serving]),
            kv_usage=_mean([v.get(names.KV_USAGE) for v in serving]),
            attainment=(
                sum(
                    v.get("attainment", 1.0) * v.get(names.SLO_WINDOW_REQUESTS, 0.0)
                    for _, v in values
                )
                / weight
                if weight > 0
                else None
            ),
            attained=attained,
            missed=missed + turned_away,
            turned_away=turned_away,
            outstanding=outstanding,
            router_queued=queued,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None and math.isfinite(x)]
    return sum(vals) / len(vals) if vals else None


async def run_episode(
    make_controller: Callable[[Callable[[], float]], ScalingController],
    trace: Sequence[Phase],
    workload: Workload,
    config: RunConfig,
    log_dir: Path,
    progress: Callable[[float, Row], None] | None = None,
) -> Episode:
    """Run ``trace`` once against a fresh fleet under one controller."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    def clock() -> float:
        return (loop.time() - start) * config.time_scale

    def wall(model_s: float) -> float:
        return model_s / config.time_scale

    controller = make_controller(clock)
    episode = Episode(controller.name, list(trace), config, workload)
    # A draining engine keeps serving until whoever places requests has seen the new list.
    unlist_s = PUBLISH_S + (RESOLVE_S if config.routers else 0.0) + 0.5
    fleet = EngineFleet(
        [*config.engine_args, "--time-scale", str(config.time_scale)],
        config.base_port,
        log_dir,
        gpu_limit=config.gpu_limit,
        drain_grace_s=wall(60.0),
        unlist_s=unlist_s,
    )
    recorder = Recorder()
    tier = (
        RouterTier(config.routers, config.base_port + 500, log_dir, list(config.router_args))
        if config.routers
        else None
    )
    load = LoadGenerator(log_dir / "loadgen.log")
    end = trace[-1].until_s
    try:
        await load.start(
            LoadPlan(
                tuple(trace),
                workload,
                config.seed,
                config.time_scale,
                "round-robin" if tier is not None else "least-in-flight",
            )
        )
        await fleet.scale_to(config.initial_replicas)
        while len(fleet.ready()) < config.initial_replicas:
            await asyncio.sleep(0.2)
        if tier is not None:
            await tier.start(fleet)
        routers = tier.endpoints() if tier is not None else ()
        router_urls = tier.urls if tier is not None else []

        def publish_once() -> None:
            """What a headless Service does: ready engines appear to whoever places."""
            if tier is not None:
                tier.publish(fleet)
                load.target(router_urls)
            else:
                load.target([r.url for r in fleet.ready()])

        publish_once()
        start = loop.time()  # the trace starts once the initial replicas serve
        load.go(start)  # asyncio's loop clock is time.monotonic, shared with the generator

        async def control() -> None:
            while clock() < end:
                now = clock()
                decision = await controller.decide(fleet, routers)
                if decision.desired_replicas != fleet.desired:
                    episode.decisions.append(
                        DecisionLog(
                            now,
                            fleet.desired,
                            decision.desired_replicas,
                            decision.reason.value,
                            decision.message,
                        )
                    )
                    await fleet.scale_to(decision.desired_replicas)
                if decision.cold_start_s is not None:
                    episode.cold_starts.append(decision.cold_start_s)
                # At zero or waking the operator evaluates every second (autoscaler/handlers.py).
                every = config.interval_s if decision.activity == "Active" else 1.0
                await asyncio.sleep(max(0.0, wall(now + every - clock())))

        async def record() -> None:
            while clock() < end:
                now = clock()
                row = await recorder.sample(
                    fleet, now, rate_at(trace, now), router_urls, load.outstanding
                )
                episode.rows.append(row)
                if progress:
                    progress(now, row)
                await asyncio.sleep(max(0.0, wall(now + config.sample_s - clock())))

        async def publish() -> None:
            while clock() < end:
                publish_once()
                await asyncio.sleep(PUBLISH_S)

        await asyncio.gather(control(), record(), publish())
    finally:
        await load.stop()
        episode.sent_at = list(load.sent_at)
        episode.sent = len(episode.sent_at)
        episode.requests = list(load.requests)
        episode.failed = sum(1 for r in episode.requests if r.status != 200)
        with contextlib.suppress(Exception):
            await controller.aclose()
        await recorder.aclose()
        if tier is not None:
            await tier.close()
        await fleet.close()
    return episode
