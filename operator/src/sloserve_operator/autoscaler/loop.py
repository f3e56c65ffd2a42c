"""One evaluation of one service: scrape, decide, remember, count.

Kubernetes is not touched here (``kube.py`` reads the state and applies the result), so the
same loop drives the closed-loop harness with plain engine processes and the operator.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from .decision import Decision, History, Observation, RouterSample, ScalingPolicy, decide
from .metrics import AutoscalerMetrics
from .metrics_source import MetricsEndpoint, MetricsSource, Scrape
from .router_source import RouterView


@dataclass(frozen=True)
class ReplicaState:
    """What the cluster says about one service at the start of an evaluation."""

    namespace: str
    name: str
    current_replicas: int
    ready_pods: tuple[MetricsEndpoint, ...]
    pending_replicas: int = 0
    rollout_in_progress: bool = False
    ready_routers: tuple[MetricsEndpoint, ...] = ()
    """Ready router pods; empty without a router tier (then the decision has no router view)."""


@dataclass(frozen=True)
class Evaluation:
    state: ReplicaState
    scrape: Scrape
    decision: Decision

    @property
    def scales(self) -> bool:
        return self.decision.desired_replicas != self.state.current_replicas


class Autoscaler:
    """Keeps each service's decision history between evaluations (in memory: after an
    operator restart the windows start empty, as HPA's do)."""

    def __init__(
        self,
        metrics: AutoscalerMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._histories: dict[tuple[str, str], History] = {}

    async def evaluate(
        self,
        policy: ScalingPolicy,
        state: ReplicaState,
        source: MetricsSource,
        routers: RouterView | None = None,
    ) -> Evaluation:
        scrape, router = await asyncio.gather(
            source.scrape(state.ready_pods),
            routers.read(state.ready_routers) if routers and state.ready_routers else _none(),
        )
        key = (state.namespace, state.name)
        observation = Observation(
            now=self._clock(),
            current_replicas=state.current_replicas,
            ready_replicas=len(state.ready_pods),
            pending_replicas=state.pending_replicas,
            rollout_in_progress=state.rollout_in_progress,
            samples=scrape.samples,
            router=router,
        )
        decision = decide(policy, observation, self._histories.get(key, History()))
        self._histories[key] = decision.history
        if self._metrics is not None:
            self._metrics.record(
                state.namespace,
                state.name,
                policy,
                decision,
                state.pending_replicas,
                len(scrape.failures),
                decision.cold_start_s,
            )
        return Evaluation(state, scrape, decision)

    def forget(self, namespace: str, name: str) -> None:
        self._histories.pop((namespace, name), None)
        if self._metrics is not None:
            self._metrics.forget(namespace, name)


async def _none() -> RouterSample | None:
    return None
