"""Cluster replay: N simulated engines behind M router replicas with stale state and shields.

Each engine is a :class:`~.engine.SimEngine` running the real engine policy;
each router replica is a real :class:`~sloserve_engine.router.core.RouterCore`
and, when shields are on, placements go through real
:class:`~sloserve_engine.router.shield.RegionShield` objects. Nothing is
re-implemented for the simulation: only time and message delays are modelled.

Time and state delay:

- events run in time order: an arrival, the next step of the engine with the
  earliest clock, or a router's queue poll;
- an engine records a :class:`~sloserve_engine.router.snapshot.EngineSnapshot`
  at the start of a step once ``publish_interval_s`` has passed since its last one
  (≥ 10 Hz while busy; an idle engine's last snapshot stays true);
- router ``j`` polls every ``publish_interval_s`` with phase ``j / M`` of the
  interval and sees, at each poll, the newest snapshot at least ``state_delay_s``
  old; a shield sees the newest snapshot at least ``shield_delay_s`` old;
- arrivals go to a router at random (a Service in front of the router replicas).

Honest counting (:mod:`sloserve_engine.contract.attainment`): a request rejected or
timed out at a router is a miss; served requests are measured from their arrival at
the router.

A request with its own SLO (mixed-SLO workloads) carries it to its router (admission's
class ranking: the full queue sheds the lowest class), its engine and its verdict.
"""

from __future__ import annotations

import bisect
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..contract.attainment import MISSED, Attainment, request_attainment
from ..contract.knobs import Knobs, SLODefaults
from ..contract.slo import SLO
from ..policy import make_policy
from ..router.admission import Action, Decision, Reason
from ..router.core import RouterCore, place_through_shields
from ..router.drain import FreedMeter
from ..router.knobs import RouterKnobs
from ..router.shield import RegionShield, Release
from ..router.snapshot import EngineSnapshot, snapshot_from_view
from .costmodel import SimProfile
from .engine import SimConfig, SimEngine
from .workload import TraceRequest


class ClusterStalledError(RuntimeError):
    """Requests remain but no engine can step and nothing will arrive (a bug)."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Cluster shape and the delays that make placement hard."""

    engines: int = 4
    routers: int = 1
    state_delay_s: float = 0.0
    """Age of the engine state a router sees at each poll (network + scrape lag)."""
    publish_interval_s: float = 0.1
    """Engines publish and routers poll at this period (10 Hz)."""
    regions: int = 1
    """Engines are split into this many contiguous shield regions, neighbours in a line."""
    shield_delay_s: float = 0.0
    """Age of the state a shield sees (0: co-located with its engines, 10 Hz snapshots)."""
    queue_poll_s: float = 0.02
    """How often a router re-judges its held requests."""
    engine_policy: str = "sloserve"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.engines < 1 or self.routers < 1:
            raise ValueError("engines and routers must be >= 1")
        if not 1 <= self.regions <= self.engines:
            raise ValueError("regions must be between 1 and the number of engines")
        if min(self.state_delay_s, self.shield_delay_s) < 0:
            raise ValueError("delays must be >= 0")
        if self.publish_interval_s <= 0 or self.queue_poll_s <= 0:
            raise ValueError("publish_interval_s and queue_poll_s must be > 0")


@dataclass(slots=True)
class RequestOutcome:
    """What one request experienced (times in seconds on the run's clock)."""

    arrival: float
    output_tokens: int
    slo: SLO | None = None
    """Its own SLO (mixed-SLO workloads); ``None``: the run's SLO."""
    engine: int = -1
    first_token: float | None = None
    finish: float | None = None
    tokens_seen: int = 0
    max_gap: float = 0.0
    rejected: str | None = None
    """Rejection reason (``slo_infeasible``, ``queue_full``, ``shed``, ``timeout``, ...)."""
    refusals: int = 0
    """Shield refusals this request's placement met."""
    placed_at: float | None = None
    predicted_ttft: float | None = None
    """The router's predicted TTFT from placement (first choice; alternatives not re-judged)."""
    queue_delays: tuple[float, ...] = ()
    """Every engine's predicted queue delay in its newest snapshot at this request's arrival
    (fresh, whatever the routers saw): whether some engine had room when it arrived."""


@dataclass(slots=True)
class ClusterResult:
    outcomes: list[RequestOutcome]
    slo: SLO
    refusals: int
    grants: int
    wall_seconds: float
    preemptions: int
    per_engine_served: list[int] = field(default_factory=list)


class _Cluster:
    def __init__(
        self,
        requests: list[TraceRequest],
        knobs: RouterKnobs,
        profile: SimProfile,
        config: SimConfig,
        slo: SLO,
        cluster: ClusterConfig,
    ) -> None:
        self.requests = requests
        self.knobs = knobs
        self.cluster = cluster
        self.slo = slo
        self.target = slo
        self.cost = profile.step
        pk = Knobs(slo_defaults=SLODefaults.of(slo))
        self.engines = [
            SimEngine(make_policy(cluster.engine_policy, pk, profile.step), profile, config)
            for _ in range(cluster.engines)
        ]
        per = -(-cluster.engines // cluster.regions)
        self.region = [f"r{e // per}" for e in range(cluster.engines)]
        self.names = [f"e{e}" for e in range(cluster.engines)]
        self.index = {n: e for e, n in enumerate(self.names)}
        self.freed = [FreedMeter() for _ in self.engines]
        self.history: list[list[EngineSnapshot]] = [[] for _ in self.engines]
        self.history_t: list[list[float]] = [[] for _ in self.engines]
        self.last_publish = [-1e9] * cluster.engines
        self.parked = [True] * cluster.engines
        self.routers = [
            RouterCore(knobs, profile.step, config.max_model_len, seed=cluster.seed * 1000 + j)
            for j in range(cluster.routers)
        ]
        self.shields: dict[str, RegionShield] = {}
        if knobs.shield:
            for name in dict.fromkeys(self.region):
                self.shields[name] = RegionShield(name, profile.step, lease_s=knobs.lease_s)
            chain = list(self.shields.values())
            for a, b in itertools.pairwise(chain):
                a.connect(b)
        self.rng = random.Random(cluster.seed)
        self.out = [RequestOutcome(r.arrival, r.output_tokens, r.slo) for r in requests]
        self.owner: dict[str, int] = {}
        self.last_token = [0.0] * len(requests)
        self.held = 0
        for e in range(cluster.engines):
            self._publish(e, 0.0)

    # ------------------------------------------------------------------ state flow

    def _publish(self, e: int, now: float) -> None:
        eng = self.engines[e]
        view = eng.snapshot()
        order = eng.policy.start_deadline(view.now)
        snap = snapshot_from_view(
            view, self.names[e], self.region[e], self.cost, now, order, self.freed[e]
        )
        self.history[e].append(snap)
        self.history_t[e].append(now)
        self.last_publish[e] = now

    def _seen(self, e: int, at: float) -> EngineSnapshot:
        k = bisect.bisect_right(self.history_t[e], at) - 1
        return self.history[e][max(k, 0)]

    def _refresh(self, j: int, now: float) -> None:
        """Router ``j`` has the snapshots its last poll returned; shields theirs."""
        period = self.cluster.publish_interval_s
        phase = period * j / self.cluster.routers
        last_poll = phase + period * np.floor((now - phase) / period)
        at = last_poll - self.cluster.state_delay_s
        core = self.routers[j]
        for e in range(len(self.engines)):
            core.observe(self._seen(e, at))
        if self.shields:
            at = now - self.cluster.shield_delay_s
            for e in range(len(self.engines)):
                self.shields[self.region[e]].observe(self._seen(e, at))
            for shield in self.shields.values():
                shield.expire(now)

    # ------------------------------------------------------------------ decisions

    def _dispatch(self, j: int, rid: str, decision: Decision, now: float) -> None:
        core = self.routers[j]
        k = int(rid)
        if decision.predicted_ttft_s is not None:
            self.out[k].predicted_ttft = decision.predicted_ttft_s
        if decision.action is Action.PLACE and self.shields:
            before = self._refusals()
            decision, _ = place_through_shields(core, self.shields, rid, decision, now)
            self.out[k].refusals += self._refusals() - before
        elif decision.action is Action.PLACE:
            assert decision.engine_id is not None
            core.granted(rid, decision.engine_id, now)
        if decision.action is Action.PLACE:
            assert decision.engine_id is not None
            e = self.index[decision.engine_id]
            r = self.requests[k]
            eng = self.engines[e]
            eng.advance_to(now)
            eng.add_request(
                rid, r.prompt_tokens, r.output_tokens, slo=r.slo or self.target, arrival_time=now
            )
            self.parked[e] = False
            self.out[k].engine = e
            self.out[k].placed_at = now
        elif decision.action is Action.REJECT:
            assert decision.reason is not None
            self.out[k].rejected = str(decision.reason)

    def _refusals(self) -> int:
        return sum(s.refusals for s in self.shields.values())

    def _arrive(self, k: int, now: float) -> None:
        r = self.requests[k]
        self.out[k].queue_delays = tuple(
            self._seen(e, now).predicted_queue_delay_s for e in range(len(self.engines))
        )
        j = self.rng.randrange(len(self.routers))
        self.owner[r.request_id] = j
        self._refresh(j, now)
        core = self.routers[j]
        decision = core.submit(r.request_id, r.prompt_tokens, r.slo or self.target, now)
        if decision.action is Action.PLACE:
            self._dispatch(j, r.request_id, decision, now)
        elif decision.action is Action.REJECT:
            assert decision.reason is not None
            self.out[k].rejected = str(decision.reason)
        self._take_shed(core)

    def _take_shed(self, core: RouterCore) -> None:
        for rid in core.take_shed():
            self.out[int(rid)].rejected = str(Reason.SHED)

    def _poll(self, now: float) -> None:
        for j, core in enumerate(self.routers):
            if not core.held():
                continue
            self._refresh(j, now)
            for rid, decision in core.poll(now):
                if decision.action is Action.REJECT:
                    assert decision.reason is not None
                    self.out[int(rid)].rejected = str(decision.reason)
                else:
                    self._dispatch(j, rid, decision, now)
            self._take_shed(core)
        self.held = sum(core.held() for core in self.routers)

    def _step(self, e: int) -> None:
        eng = self.engines[e]
        if eng.now - self.last_publish[e] >= self.cluster.publish_interval_s:
            self._publish(e, eng.now)
        res = eng.step()
        if res.idle:
            self.parked[e] = True
            return
        end = res.end
        for rid in res.emitted:
            k = int(rid)
            o = self.out[k]
            if o.first_token is None:
                o.first_token = end
                j = self.owner[rid]
                self.routers[j].first_token(rid, end)
                if self.shields:
                    self.shields[self.region[e]].release(rid, Release.FIRST_TOKEN, end)
            else:
                gap = end - self.last_token[k]
                if gap > o.max_gap:
                    o.max_gap = gap
            self.last_token[k] = end
            o.tokens_seen += 1
        for rid in res.finished:
            k = int(rid)
            o = self.out[k]
            o.finish = end
            assert o.first_token is not None
            self.routers[self.owner[rid]].finished(
                rid, o.tokens_seen, verdict(o, self.slo).both, end
            )
        if not eng.has_unfinished:
            self.parked[e] = True

    # ------------------------------------------------------------------ loop

    def run(self, progress: Callable[[int], None] | None) -> None:
        reqs = self.requests
        n = len(reqs)
        i = 0
        next_poll = 0.0
        done = 0
        while True:
            t_arr = reqs[i].arrival if i < n else np.inf
            busy = [(eng.now, e) for e, eng in enumerate(self.engines) if not self.parked[e]]
            t_eng, e = min(busy) if busy else (np.inf, -1)
            t_poll = next_poll if self.held else np.inf
            t = min(t_arr, t_eng, t_poll)
            if t == np.inf:
                break
            if t == t_arr:
                self._arrive(i, t_arr)
                i += 1
                self.held = sum(core.held() for core in self.routers)
                if self.held and next_poll <= t_arr:
                    next_poll = t_arr + self.cluster.queue_poll_s
            elif t == t_poll:
                self._poll(t_poll)
                next_poll = t_poll + self.cluster.queue_poll_s
            else:
                self._step(e)
            now_done = sum(sum(c.outcomes.values()) for c in self.routers)
            if progress is not None and now_done > done:
                progress(now_done - done)
            done = now_done
        if done != n:
            raise ClusterStalledError(f"{n - done} requests have no outcome")


def verdict(o: RequestOutcome, slo: SLO) -> Attainment:
    """The contract's rule against the request's own SLO, else ``slo`` (the run's); a
    rejected or unfinished request is :data:`MISSED`."""
    if o.first_token is None or o.finish is None:
        return MISSED
    own = o.slo or slo
    return request_attainment(own, o.arrival, o.first_token, o.finish, o.output_tokens, o.max_gap)


def simulate_cluster(
    requests: list[TraceRequest],
    knobs: RouterKnobs,
    profile: SimProfile,
    config: SimConfig,
    slo: SLO,
    cluster: ClusterConfig,
    progress: Callable[[int], None] | None = None,
) -> ClusterResult:
    """Replay ``requests`` (sorted by arrival) through routers onto engines."""
    wall0 = time.perf_counter()
    sim = _Cluster(requests, knobs, profile, config, slo, cluster)
    sim.run(progress)
    wrong = [
        k for k, o in enumerate(sim.out) if o.rejected is None and o.tokens_seen != o.output_tokens
    ]
    if wrong:
        raise ClusterStalledError(f"requests {wrong[:5]} did not get exactly their tokens")
    served = [0] * cluster.engines
    for o in sim.out:
        if o.engine >= 0:
            served[o.engine] += 1
    return ClusterResult(
        outcomes=sim.out,
        slo=slo,
        refusals=sum(s.refusals for s in sim.shields.values()),
        grants=sum(s.grants for s in sim.shields.values()),
        wall_seconds=time.perf_counter() - wall0,
        preemptions=sum(
            eng.stats().preemptions_recompute + eng.stats().preemptions_swap for eng in sim.engines
        ),
        per_engine_served=served,
    )
