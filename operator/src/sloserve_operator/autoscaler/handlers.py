"""Kopf glue: one background task evaluates every ``LLMService`` on its own interval.

One task, not a kopf daemon or timer per object: those make kopf put a finalizer on every
``LLMService`` (deletion would hang while the operator is down) and cost a task per object.
Here a 1 s tick starts the evaluations that are due (``autoscaling.intervalSeconds`` after the
previous one), at most ``MAX_CONCURRENT`` at a time, and sleeps otherwise. Services, their
pods and Deployments come from the operator's state cache (``cache.py``, written by the
controller); writes go through the operator's shared ``Kube``. ``main.py`` calls
:func:`register` unless the autoscaler is disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import kopf
import pydantic

from ..api.v1alpha1 import EngineModeObserved
from ..cache import Key, StateCache
from ..k8s import ApiError
from ..render.target import Target
from ..runtime import Clients, Runtime
from .decision import Reason
from .engine_mode import observed_mode
from .kube import (
    KubeEdge,
    engine_mode_event,
    override_event,
    replica_state,
    status_due,
    status_patch,
)
from .loop import Autoscaler
from .metrics import AutoscalerMetrics
from .metrics_source import MetricsSource, PodsSource, PrometheusSource
from .router_source import RouterView
from .spec import policy_from_spec

log = logging.getLogger(__name__)

TICK_S = 1.0
MAX_CONCURRENT = 32
"""Evaluations in flight at once (each is one scrape per ready pod plus at most 3 writes)."""
_IDLE_S = 30.0
"""How soon a disabled or invalid service is looked at again."""


@dataclass
class _Service:
    """What the loop remembers between evaluations of one service."""

    pods: PodsSource
    routers: RouterView
    due: float = 0.0
    busy: bool = False
    previous: Reason | None = None
    last_decision: tuple[int, int] | None = None
    """(replicas before, replicas after) of the previous decision: tells a hand-set count."""
    last_status: dict[str, Any] | None = None
    last_write: float = -math.inf
    last_mode: EngineModeObserved | None = None
    """The engines' mode at the last evaluation any pod answered (an Event when it changes)."""


class AutoscalerLoop:
    def __init__(self, autoscaler: Autoscaler) -> None:
        self._autoscaler = autoscaler
        self._services: dict[Key, _Service] = {}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, runtime: Runtime) -> None:
        while True:
            if runtime.clients is not None:  # the operator's startup handler connected them
                self.tick(runtime.cache, runtime.clients, time.monotonic())
            await asyncio.sleep(TICK_S)

    def tick(self, cache: StateCache, clients: Clients, now: float) -> None:
        keys = cache.keys()
        for key in set(self._services) - set(keys):
            self._services.pop(key)
            self._autoscaler.forget(*key)
        for key in keys:
            svc = self._services.get(key) or self._services.setdefault(
                key, _Service(PodsSource(client=clients.http), RouterView(clients.http))
            )
            if svc.busy or svc.due > now:
                continue
            svc.busy = True
            task = asyncio.create_task(self._evaluate(cache, clients, key, svc))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _evaluate(self, cache: StateCache, clients: Clients, key: Key, svc: _Service) -> None:
        try:
            async with self._slots:
                delay = await self._evaluate_once(cache, clients, key, svc)
                svc.due = time.monotonic() + delay
        except Exception:  # one service's bug must not stop the others
            log.exception("autoscaler: evaluation of %s/%s failed", *key)
            svc.due = time.monotonic() + _IDLE_S
        finally:
            svc.busy = False

    async def _evaluate_once(
        self, cache: StateCache, clients: Clients, key: Key, svc: _Service
    ) -> float:
        """One evaluation; returns the seconds until the next."""
        cached = cache.get(key)
        if cached is None:
            return _IDLE_S
        body = cached.body
        try:
            target = Target.from_body(body)
        except pydantic.ValidationError as exc:
            log.warning("autoscaler: %s/%s does not validate, not scaling: %s", *key, exc)
            return _IDLE_S
        auto = target.spec.autoscaling
        if not auto.enabled:
            return _IDLE_S
        state = replica_state(
            target, cached.pods.values(), cached.deployment, cached.routers.values()
        )
        source = _source(target, svc.pods)
        try:
            evaluation = await self._autoscaler.evaluate(
                policy_from_spec(target.spec), state, source, svc.routers
            )
        finally:
            if source is not svc.pods:
                await source.aclose()
        now = dt.datetime.now(dt.UTC)
        patch = status_patch(evaluation, now)
        due = status_due(patch, svc.last_status, time.monotonic() - svc.last_write)
        bounds = (auto.min_replicas, auto.max_replicas)
        override = override_event(body, evaluation, svc.last_decision, bounds, now)
        simulated = target.spec.engine.simulated
        mode_event = engine_mode_event(body, evaluation, simulated, svc.last_mode, now)
        events = [e for e in (override, mode_event) if e is not None]
        try:
            await KubeEdge(clients.kube).apply(
                body, evaluation, svc.previous, now, patch if due else None, events
            )
        except ApiError as exc:
            log.warning("autoscaler: %s/%s: API error, retrying next interval: %s", *key, exc)
            return float(auto.interval_seconds)
        if due:
            svc.last_status, svc.last_write = patch, time.monotonic()
        svc.previous = evaluation.decision.reason
        svc.last_mode = observed_mode(s.mode for s in evaluation.scrape.samples) or svc.last_mode
        svc.last_decision = (state.current_replicas, evaluation.decision.desired_replicas)
        if evaluation.scales:
            log.info("autoscaler: %s/%s %s", *key, evaluation.decision.message)
        if evaluation.decision.activity != "Active":
            return TICK_S  # at zero or waking: a held request must not wait an interval
        return float(auto.interval_seconds)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _source(target: Target, pods_source: PodsSource) -> MetricsSource:
    auto = target.spec.autoscaling
    if auto.metrics_source == "prometheus" and auto.prometheus_url:
        return PrometheusSource(
            auto.prometheus_url, target.namespace, target.name, auto.metrics_timeout_seconds
        )
    return pods_source


@functools.cache
def _autoscaler() -> Autoscaler:
    """One per operator process: its metrics go to the process's default registry, which
    takes each series name once (and a restarted ``serve`` keeps the decision histories)."""
    return Autoscaler(AutoscalerMetrics())


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    """Run the loop while the operator runs (its series are registered from here on)."""
    autoscaler = _autoscaler()
    running: list[tuple[AutoscalerLoop, asyncio.Task[None]]] = []

    async def start_autoscaler(**_: Any) -> None:
        loop = AutoscalerLoop(autoscaler)  # created inside the operator's event loop
        task = asyncio.create_task(loop.run(runtime), name="sloserve-autoscaler")
        running.append((loop, task))

    async def stop_autoscaler(**_: Any) -> None:
        while running:
            loop, task = running.pop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await loop.stop()

    kopf.on.startup(registry=registry, id="start-autoscaler")(start_autoscaler)
    kopf.on.cleanup(registry=registry, id="stop-autoscaler")(stop_autoscaler)
