"""The autoscaling decision: a pure function from what was observed to how many replicas.

Everything that makes autoscalers misbehave in practice is decided here, where it can be
tested without a cluster (docs/autoscaling.md):

* two signals, the larger wins: KV pressure against ``kv_pressure_target`` (HPA ratio with a
  tolerance band) and measured SLO attainment against ``slo_attainment_target``, with a fast
  path that skips the scale-up window when attainment drops sharply;
* HPA-style stabilization: scale up to the *smallest* recommendation of the short up-window,
  down to the *largest* of the long down-window, with bounded steps and min/max;
* no 2<->1 oscillation: when SLO attainment failed at some per-pod KV pressure, that pressure
  becomes a ceiling that a scale-down must stay below (a consolidation check, as Dynamo
  PR #9294 found necessary);
* pods that are not ready or whose metrics are stale are left out instead of stalling the loop
  (AIBrix #593/#617); with no traffic KV pressure is 0, so a service still scales down
  (Dynamo #6985); pending pods (no free GPU) block further scale-up instead of looping;
* with a router tier, its view counts: a request it turned away (rejected, timed out, no
  engine) is a miss in the attainment (the engines' attainment times the routers' served
  share), a window in which nothing finished while requests wait in its queue reads as
  attainment 0, not 100 %, and a queue that does not shrink asks for the replicas it needs;
* scale to zero (``min_replicas`` 0) only after ``scale_to_zero_after_s`` without any request
  arriving, queued or running, and back to ``max(1, what the queue needs)`` at once, without
  the up-window, as soon as the routers hold a request.

The caller keeps ``History`` between calls; this module does no I/O and reads no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum


class Reason(StrEnum):
    """Why a decision came out as it did; the label of the decision counter and Event reason."""

    SCALE_UP_KV = "ScaleUpKVPressure"
    SCALE_UP_SLO = "ScaleUpSLO"
    SCALE_UP_SLO_FAST = "ScaleUpSLOFastPath"
    SCALE_DOWN_KV = "ScaleDownKVPressure"
    TO_MIN_REPLICAS = "ScaleToMinReplicas"
    TO_MAX_REPLICAS = "ScaleToMaxReplicas"
    STEADY = "Steady"
    STABILIZING = "Stabilizing"
    SLO_CEILING = "HoldSLOPressureCeiling"
    ROLLOUT = "HoldRolloutInProgress"
    PENDING = "HoldPendingPods"
    NO_METRICS = "HoldNoMetrics"
    SCALE_UP_QUEUE = "ScaleUpRouterQueue"
    SCALE_TO_ZERO = "ScaleToZero"
    SCALE_FROM_ZERO = "ScaleFromZero"
    IDLE = "Idle"

    @property
    def changes_replicas(self) -> bool:
        return self in _CHANGING


_CHANGING = frozenset(
    {
        Reason.SCALE_UP_KV,
        Reason.SCALE_UP_SLO,
        Reason.SCALE_UP_SLO_FAST,
        Reason.SCALE_DOWN_KV,
        Reason.TO_MIN_REPLICAS,
        Reason.TO_MAX_REPLICAS,
        Reason.SCALE_UP_QUEUE,
        Reason.SCALE_TO_ZERO,
        Reason.SCALE_FROM_ZERO,
    }
)


@dataclass(frozen=True)
class ScalingPolicy:
    """The tunables of the decision; ``spec.autoscaling`` maps onto these one to one."""

    min_replicas: int = 1
    """Never fewer replicas than this. 0 allows scale to zero, which only the idle rule does:
    every other signal keeps at least one replica (the routers hold requests meanwhile)."""
    max_replicas: int = 10
    """Never more replicas than this, whatever the signals say."""
    kv_pressure_target: float = 0.8
    """Per-pod KV demand (running + waiting) over KV capacity that the KV signal aims for."""
    slo_attainment_target: float = 0.95
    """Fraction of finished requests meeting both TTFT and TBT below which the SLO signal acts."""
    tolerance: float = 0.1
    """KV ratios within 1 +/- tolerance of the target change nothing (HPA's default band)."""
    scale_up_stabilization_s: float = 10.0
    """Scale up only to the smallest recommendation seen in this window: filters one-off spikes."""
    scale_down_stabilization_s: float = 300.0
    """Scale down only to the largest recommendation seen in this window: avoids flapping."""
    fast_path_attainment_drop: float = 0.1
    """Attainment this far below target skips the scale-up window (a sharp SLO drop)."""
    scale_up_max_step: int = 4
    """At most this many replicas added per decision (or doubling, whichever is more)."""
    scale_down_max_step: int = 1
    """At most this many replicas removed per decision."""
    kv_pressure_cap: float = 1.0
    """Per-pod pressure counts at most this much. A backlog queued on one pod does not move to
    new pods, so pressure beyond a full cache measures waiting time, which the SLO signal
    judges; uncapped, a deep queue would ask for many replicas that it cannot use."""
    slo_settle_s: float = 30.0
    """After a scale-up the SLO signal waits this long before asking for more: attainment is
    measured over a sliding window and lags the replicas just added."""
    metric_max_age_s: float = 30.0
    """Samples older than this count as missing: an old number is worse than none."""
    slo_ceiling_memory_s: float = 1800.0
    """How long a per-pod KV pressure at which attainment failed keeps blocking scale-downs.

    Refreshed while it is what blocks a scale-down, so under steady load it never expires; it
    lapses only once the load has changed enough that nothing consults it."""
    scale_to_zero_after_s: float = 900.0
    """With ``min_replicas`` 0: idle this long (no request arrived, queued or running) before
    scaling to zero. Longer than the gap between occasional requests, so they never cycle."""

    def __post_init__(self) -> None:
        problems = []
        if self.min_replicas < 0:
            problems.append("min_replicas must be >= 0")
        if self.scale_to_zero_after_s <= 0:
            problems.append("scale_to_zero_after_s must be > 0")
        if self.max_replicas < self.min_replicas:
            problems.append("max_replicas must be >= min_replicas")
        if not 0.0 < self.kv_pressure_target <= 1.0:
            problems.append("kv_pressure_target must be in (0, 1]")
        if not 0.0 < self.slo_attainment_target <= 1.0:
            problems.append("slo_attainment_target must be in (0, 1]")
        if not 0.0 <= self.tolerance < 1.0:
            problems.append("tolerance must be in [0, 1)")
        if self.scale_up_max_step < 1 or self.scale_down_max_step < 1:
            problems.append("scale_up_max_step and scale_down_max_step must be >= 1")
        if min(self.scale_up_stabilization_s, self.scale_down_stabilization_s) < 0:
            problems.append("stabilization windows must be >= 0 seconds")
        if problems:
            raise ValueError("invalid autoscaling policy: " + "; ".join(problems))


@dataclass(frozen=True)
class PodSample:
    """What one ready pod reported; ``None`` where the metric was absent or unusable."""

    pod: str
    kv_pressure: float | None
    attainment: float | None
    """``sloserve_slo_attainment_ratio{kind="both"}``; ``None`` if the pod finished nothing."""
    finished_requests: float
    """Requests finished since the previous sample: the weight of ``attainment``."""
    age_s: float = 0.0
    busy: float | None = None
    """Requests running or waiting on the pod now (activity; per-replica capacity)."""
    started: float = 0.0
    """Requests the pod has begun serving since it started (finished + running): above 0 once
    it has served a first token, give or take one step."""
    mode: str | None = None
    """What serves on the pod (``sloserve_engine_info``'s ``mode``); None if it does not say."""


@dataclass(frozen=True)
class RouterSample:
    """The router tier's view, summed over the router pods that answered."""

    queued: float
    """Requests waiting in router queues now: no engine can take them within their SLO."""
    outcomes: float
    """Requests that got any outcome since the previous read: arrivals, for the idle clock."""
    missed: float
    """Of those, the ones turned away for lack of capacity (rejected, timed out in the queue,
    no engine): SLO misses that no engine ever counted."""


@dataclass(frozen=True)
class Observation:
    """One loop iteration's view of a service."""

    now: float
    current_replicas: int
    """``spec.replicas`` of the LLMService: what was last asked for."""
    ready_replicas: int
    pending_replicas: int = 0
    """Pods that cannot be scheduled (no free GPU): more replicas would only add to these."""
    rollout_in_progress: bool = False
    samples: Sequence[PodSample] = ()
    router: RouterSample | None = None
    """``None`` without a router tier, or when no router answered (then not to zero now)."""


@dataclass(frozen=True)
class History:
    """State carried between decisions: recommendations and learned SLO pressure ceilings."""

    recommendations: tuple[tuple[float, int], ...] = ()
    slo_ceilings: tuple[tuple[float, float], ...] = ()
    """(time, mean per-pod KV pressure) observed while attainment was below target."""
    slo_met_pressure: tuple[float, float] | None = None
    """(time, highest mean per-pod KV pressure at which two windows in a row met the SLO)."""
    last_scale_up: float | None = None
    last_activity: float | None = None
    """When a request was last seen arriving, queued or running (the idle clock)."""
    woke_at: float | None = None
    """When the service was last scaled up from zero, until its first request is served."""
    last_queued: float = 0.0
    """Router queue depth at the previous decision: a queue that does not shrink needs more."""
    replica_capacity: float | None = None
    """Most requests one replica held (running + waiting) while near the KV target and within
    SLO: how many queued requests one more replica takes."""
    met_window_pressure: float | None = None
    """Mean per-pod KV pressure of the previous window if it met the SLO, else ``None``: one
    window is not enough to learn ``slo_met_pressure`` (at a load step the first window has
    a full cache whose requests still met the SLO before the late ones finish)."""


@dataclass(frozen=True)
class Signals:
    """The formula's inputs and intermediate numbers, for Events and docs."""

    pods_with_metrics: int = 0
    kv_pressure_mean: float | None = None
    kv_demand: float | None = None
    """Sum of per-pod pressure, missing ready pods imputed conservatively (see ``_kv_demand``)."""
    kv_desired: int | None = None
    attainment: float | None = None
    finished_requests: float = 0.0
    slo_desired: int | None = None
    fast_path: bool = False
    recommendation: int = 0
    slo_ceiling: float | None = None
    slo_met_pressure: float | None = None
    """Highest per-pod KV pressure that met the SLO lately; engine misses below it are not
    taken as a lack of replicas."""
    router_queued: float | None = None
    router_missed: float = 0.0
    router_outcomes: float = 0.0
    """Requests the routers answered in the window, turned away or not: with ``router_missed``,
    the served share that scales the engines' attainment."""
    queue_desired: int | None = None
    idle_s: float = 0.0
    """Seconds since a request was last seen arriving, queued or running."""


@dataclass(frozen=True)
class Decision:
    desired_replicas: int
    reason: Reason
    signals: Signals
    history: History = field(repr=False, default_factory=History)
    cold_start_s: float | None = None
    """Set once, at the decision that first sees a request served after a wake from zero:
    seconds from that scale-up (resolution: the evaluation interval)."""

    @property
    def activity(self) -> str:
        """``Idle`` at zero, ``Waking`` from a scale-up at zero until a request is served."""
        if self.desired_replicas == 0:
            return "Idle"
        return "Waking" if self.history.woke_at is not None else "Active"

    @property
    def message(self) -> str:
        """One line for the Kubernetes Event: inputs and the formula's result."""
        s = self.signals
        kv = "n/a" if s.kv_pressure_mean is None else f"{s.kv_pressure_mean:.3f}"
        att = "n/a" if s.attainment is None else f"{s.attainment:.3f}"
        return (
            f"{self.reason.value}: desired={self.desired_replicas}"
            f" recommendation={s.recommendation}"
            f" kvPressure={kv} kvDesired={s.kv_desired} attainment={att}"
            f" (finished={s.finished_requests:g}) sloDesired={s.slo_desired}"
            f" fastPath={s.fast_path} pods={s.pods_with_metrics}"
            + ("" if s.slo_ceiling is None else f" sloPressureCeiling={s.slo_ceiling:.3f}")
            + ("" if s.slo_met_pressure is None else f" sloMetPressure={s.slo_met_pressure:.3f}")
            + (
                ""
                if s.router_queued is None
                else f" routerQueued={s.router_queued:g} routerMissed={s.router_missed:g}"
                f" routerAnswered={s.router_outcomes:g}"
                f" queueDesired={s.queue_desired} idleSeconds={s.idle_s:.0f}"
            )
        )


def decide(policy: ScalingPolicy, obs: Observation, history: History = History()) -> Decision:
    """Desired replicas for ``obs``; pure, so the same inputs always give the same decision."""
    current, now, router = obs.current_replicas, obs.now, obs.router
    fresh = [s for s in obs.samples if s.age_s <= policy.metric_max_age_s]
    kv = [
        min(s.kv_pressure, policy.kv_pressure_cap)
        for s in fresh
        if s.kv_pressure is not None and math.isfinite(s.kv_pressure)
    ]
    weighted = [
        (s.attainment, s.finished_requests)
        for s in fresh
        if s.attainment is not None and math.isfinite(s.attainment) and s.finished_requests > 0
    ]
    kv_mean = sum(kv) / len(kv) if kv else None
    missed = router.missed if router is not None else 0.0
    engine_finished = sum(w for _, w in weighted)
    finished = engine_finished + missed
    attainment = _attainment(weighted, router)
    ready = max(obs.ready_replicas, len(fresh))
    met = history.slo_met_pressure
    if met is not None and now - met[0] > policy.slo_ceiling_memory_s:
        met = None
    unexplained = (
        met is not None and kv_mean is not None and kv_mean < met[1] * (1.0 - policy.tolerance)
    )
    # Engines that miss while each carries less than it carried when the SLO was met: load
    # does not explain those misses (on the 2-core bench VM: CPU starvation of the simulated
    # engines), and more replicas would not cure them. Only the routers' turn-aways (they
    # judge every engine before refusing) still ask for replicas.
    slo_attainment = _attainment((), router) if unexplained else attainment
    window_met = (
        kv_mean
        if attainment is not None
        and attainment >= policy.slo_attainment_target
        and kv_mean is not None
        and len(fresh) >= obs.ready_replicas
        else None
    )
    if window_met is not None and history.met_window_pressure is not None:
        sustained = min(window_met, history.met_window_pressure)
        if met is None or sustained >= met[1]:
            met = (now, sustained)
    served = engine_finished + (max(0.0, router.outcomes - missed) if router else 0.0)
    floor = max(1, policy.min_replicas)  # only the idle rule goes below one replica

    busy: list[float] = [s.busy for s in fresh if s.busy is not None]
    # A router read that failed is no news either way: it neither restarts the idle clock (one
    # slow scrape would postpone scale to zero by a whole window) nor lets the service go to
    # zero now; the counts it missed arrive with the next read (counter deltas).
    active = any(busy) or (router is not None and (router.outcomes > 0 or router.queued > 0))
    last_activity = now if active or history.last_activity is None else history.last_activity
    queued = router.queued if router is not None else 0.0
    capacity = _learn_capacity(policy, history.replica_capacity, busy, kv_mean, attainment, queued)
    woke_at, cold_start = history.woke_at, None
    if woke_at is not None and any(s.started > 0 for s in fresh):
        cold_start, woke_at = now - woke_at, None

    kv_demand = _kv_demand(kv, ready, policy.kv_pressure_target)
    kv_desired = _kv_desired(policy, kv_demand, ready, current)
    last_up = history.last_scale_up
    waking = woke_at is not None  # woken replicas have not served yet: judge them once they do
    settling = waking or (last_up is not None and now - last_up < policy.slo_settle_s)
    slo_desired, fast = _slo_desired(policy, slo_attainment, ready, current, settling, served > 0)
    queue_desired = _queue_desired(router, history.last_queued, capacity, ready, current, waking)
    candidates = [d for d in (kv_desired, slo_desired, queue_desired) if d is not None]

    ceilings = tuple(
        (t, p) for t, p in history.slo_ceilings if now - t <= policy.slo_ceiling_memory_s
    )
    if slo_desired is not None and slo_desired > current and kv_mean and not unexplained:
        # Only when the SLO signal itself asks for more (all replicas serving, not settling):
        # a lagging window right after a scale-up would teach a needlessly low ceiling. Nor
        # from misses below a pressure that met the SLO (router turn-aways included): a
        # ceiling there would block every scale-down (bench 18:05: learned at 0.115, the
        # service kept 3 replicas at 30 % of one replica's load to the end).
        ceilings = _remember(ceilings, now, kv_mean)
    ceiling = min((p for _, p in ceilings), default=None)

    signals = Signals(
        pods_with_metrics=len(fresh),
        kv_pressure_mean=kv_mean,
        kv_demand=kv_demand,
        kv_desired=kv_desired,
        attainment=attainment,
        finished_requests=finished,
        slo_desired=slo_desired,
        fast_path=fast,
        slo_ceiling=ceiling,
        slo_met_pressure=None if met is None else met[1],
        router_queued=None if router is None else router.queued,
        router_missed=missed,
        router_outcomes=0.0 if router is None else router.outcomes,
        queue_desired=queue_desired,
        idle_s=now - last_activity,
    )
    kept = _window(history.recommendations, now, _horizon(policy))

    def hold(
        desired: int, reason: Reason, sig: Signals, recs: tuple[tuple[float, int], ...]
    ) -> Decision:
        memory = History(
            recs, ceilings, met, last_up, last_activity, woke_at, queued, capacity, window_met
        )
        return Decision(desired, reason, sig, memory, cold_start)

    if current == 0 and policy.min_replicas == 0:
        if router is not None and (router.queued > 0 or router.outcomes > 0):
            # Wake at once, no up-window: every second here is a held request's latency.
            need = math.ceil(router.queued / capacity - 1e-9) if capacity else 1
            target = min(policy.max_replicas, max(1, need))
            last_up, woke_at, cold_start = now, now, None
            return hold(target, Reason.SCALE_FROM_ZERO, replace(signals, recommendation=target), ())
        return hold(0, Reason.IDLE, replace(signals, recommendation=0), ())
    if (
        policy.min_replicas == 0
        and router is not None
        and now - last_activity >= policy.scale_to_zero_after_s
    ):
        woke_at = None
        return hold(0, Reason.SCALE_TO_ZERO, replace(signals, recommendation=0), ())

    if not (floor <= current <= policy.max_replicas):
        target = min(max(current, floor), policy.max_replicas)
        reason = Reason.TO_MIN_REPLICAS if target > current else Reason.TO_MAX_REPLICAS
        return hold(target, reason, replace(signals, recommendation=target), (*kept, (now, target)))
    if not candidates:
        return hold(current, Reason.NO_METRICS, replace(signals, recommendation=current), kept)

    raw = max(candidates)
    blocked_by_ceiling = False
    if raw < current and ceiling is not None and kv_demand is not None:
        # Consolidation check: the pods left after a scale-down must stay below the pressure
        # at which attainment failed, or the next SLO scale-up undoes it (2<->1 flapping).
        bound = math.floor(kv_demand / (ceiling * (1.0 - policy.tolerance))) + 1
        if bound > raw:
            raw, blocked_by_ceiling = min(bound, current), True
            # While the ceiling is what keeps the size, it must not expire under steady load.
            ceilings = _remember(ceilings, now, ceiling)
    raw = min(max(raw, floor), policy.max_replicas)

    recs = (*kept, (now, raw))
    # When a ready pod gave no sample this recommendation leans on imputed numbers, so it
    # steers this decision only: kept, one slow scrape would pin the down window for 300 s.
    stored = kept if len(fresh) < obs.ready_replicas else recs
    up_window = [r for t, r in recs if now - t <= policy.scale_up_stabilization_s]
    down_window = [r for t, r in recs if now - t <= policy.scale_down_stabilization_s]
    stabilized = current
    if raw > current:
        stabilized = max(current, min(up_window))
        if fast and slo_desired is not None:
            # The fast path lets the SLO signal's own number skip the window, not whatever
            # another signal asked for in the same evaluation (one queued request did).
            stabilized = max(stabilized, min(slo_desired, raw))
    elif raw < current:
        stabilized = min(current, max(down_window))
    up_limit = current + max(policy.scale_up_max_step, current)
    down_limit = current - policy.scale_down_max_step
    desired = min(max(stabilized, down_limit), up_limit)
    signals = replace(signals, recommendation=raw)

    if obs.rollout_in_progress and desired != current:
        return hold(current, Reason.ROLLOUT, signals, stored)
    if obs.pending_replicas > 0 and desired >= current and raw >= current:
        # The replicas asked for do not all fit: say so rather than "Steady", and never ask
        # for more (a scale-down still goes ahead and removes pending pods first).
        return hold(current, Reason.PENDING, signals, stored)
    if desired > current:
        reason = _up_reason(policy, desired, kv_desired, slo_desired, queue_desired, fast)
        last_up = now
    elif desired < current:
        reason = Reason.SCALE_DOWN_KV
    elif blocked_by_ceiling:
        reason = Reason.SLO_CEILING
    elif raw != current:
        reason = Reason.STABILIZING
    else:
        reason = Reason.STEADY
    return hold(desired, reason, signals, stored)


def _learn_capacity(
    policy: ScalingPolicy,
    known: float | None,
    busy: Sequence[float],
    kv_mean: float | None,
    attainment: float | None,
    queued: float,
) -> float | None:
    """Requests one replica holds when near its KV target and within SLO: learned only then,
    because at light load the per-pod count says nothing about what a replica can take."""
    near_target = kv_mean is not None and kv_mean >= policy.kv_pressure_target * (
        1.0 - policy.tolerance
    )
    meeting = attainment is not None and attainment >= policy.slo_attainment_target
    if not (busy and near_target and meeting and queued == 0):
        return known
    return max(known or 0.0, sum(busy) / len(busy))


def _queue_desired(
    router: RouterSample | None,
    last_queued: float,
    capacity: float | None,
    ready: int,
    current: int,
    waking: bool,
) -> int | None:
    """A router queue held at two decisions in a row and not smaller at the second: the
    replicas serving now cannot take it, so add what it needs (one replica per learned
    capacity, else one)."""
    if router is None or router.queued <= 0 or current == 0:
        return None
    if last_queued <= 0 or router.queued < last_queued:
        # A queue seen once may be a moment's hold (a request waits for a KV block to free up);
        # a queue at two decisions in a row that did not shrink is one the replicas cannot take.
        return None
    if ready < current or waking:
        # Replicas asked for are starting, or have not served yet after a wake from zero
        # (routers find them within a DNS refresh): they take the queue first.
        return current
    need = math.ceil(router.queued / capacity - 1e-9) if capacity else 1
    return ready + max(1, need)


def _remember(
    ceilings: tuple[tuple[float, float], ...], now: float, pressure: float
) -> tuple[tuple[float, float], ...]:
    """Add a ceiling, dropping older ones it dominates: only the minimum ever matters, and an
    older, higher entry expires first, so the tuple stays short and increasing."""
    return (*((t, p) for t, p in ceilings if p < pressure), (now, pressure))


def _kv_demand(kv: list[float], ready: int, target: float) -> float | None:
    """Total KV demand in units of one pod's capacity.

    Ready pods without a sample are assumed to sit exactly at the target: they neither push
    a scale-up nor permit a scale-down, which is HPA's conservative treatment of missing pods.
    """
    if not kv:
        return None
    return sum(kv) + max(0, ready - len(kv)) * target


def _kv_desired(
    policy: ScalingPolicy, demand: float | None, ready: int, current: int
) -> int | None:
    """HPA formula ``ceil(demand / target)`` unless the ratio is inside the tolerance band."""
    if demand is None:
        return None
    if ready > 0 and abs(demand / (ready * policy.kv_pressure_target) - 1.0) <= policy.tolerance:
        return current
    return math.ceil(demand / policy.kv_pressure_target - 1e-9)


def _attainment(
    weighted: Sequence[tuple[float, float]], router: RouterSample | None
) -> float | None:
    """Share of the window's requests that met their SLO.

    Engine side: the finished-weighted attainment of the pods that reported. With routers,
    multiplied by the share of the requests the routers answered that they did not turn away
    (``1 - missed / outcomes``). A product of two ratios, not a sum of counts: a pod whose
    scrape failed, or a router counter read after several failed reads (its delta then spans
    minutes, not one interval), changes the weight of a ratio but cannot make a few turned-away
    requests outweigh the finishes nobody counted (a bench run read 0.00 from 15 turned away
    while its one engine's scrape timed out, and 0.38 from 13 misses of the last 100 s). With
    no pod reporting, the served requests count as met: the upper bound, so a scale-up sized
    by it is the least the turned-away requests alone justify.
    """
    weight = sum(w for _, w in weighted)
    engine = sum(a * w for a, w in weighted) / weight if weight > 0 else None
    if router is None:
        return engine
    if router.missed > 0:
        answered = max(router.outcomes, router.missed)
        return (1.0 if engine is None else engine) * (1.0 - router.missed / answered)
    if engine is None and router.queued > 0:
        return 0.0  # requests wait and nothing finished: that is not 100 %
    return engine


def _slo_desired(
    policy: ScalingPolicy,
    attainment: float | None,
    ready: int,
    current: int,
    settling: bool,
    served: bool,
) -> tuple[int | None, bool]:
    """``ceil(ready * target / attainment)`` while attainment is below target.

    The ratio reads attainment as the share of the load that ``ready`` replicas serve within
    SLO; it only ever pushes up (scale-down is the KV signal's job, checked against the SLO
    pressure ceiling). Attainment is floored at 0.05 so a total collapse still gives a finite
    number, which the step bound then limits. A window in which nothing was served at all
    (everything turned away, or nothing finished while requests wait) says nothing about how
    much the replicas can take: it asks for one more, not for ``target / 0.05`` times as many
    (the queue signal sizes a queue by the learned per-replica capacity).
    """
    if attainment is None or attainment >= policy.slo_attainment_target:
        return None, False
    fast = attainment < policy.slo_attainment_target - policy.fast_path_attainment_drop
    if ready < current or settling:
        # Replicas just asked for are starting or have served only briefly: judge them once
        # the lagging attainment window has seen them, or one scale-up compounds into several.
        return current, fast
    if not served:
        return current + 1, fast
    desired = math.ceil(ready * policy.slo_attainment_target / max(attainment, 0.05) - 1e-9)
    return max(desired, current + 1), fast


def _up_reason(
    policy: ScalingPolicy,
    desired: int,
    kv_desired: int | None,
    slo_desired: int | None,
    queue_desired: int | None,
    fast: bool,
) -> Reason:
    wanted = max(kv_desired or 0, slo_desired or 0, queue_desired or 0)
    if desired == policy.max_replicas and wanted > desired:
        return Reason.TO_MAX_REPLICAS
    if slo_desired is not None and slo_desired >= max(kv_desired or 0, queue_desired or 0):
        return Reason.SCALE_UP_SLO_FAST if fast else Reason.SCALE_UP_SLO
    if queue_desired is not None and queue_desired >= (kv_desired or 0):
        return Reason.SCALE_UP_QUEUE
    return Reason.SCALE_UP_KV


def _horizon(policy: ScalingPolicy) -> float:
    return max(policy.scale_up_stabilization_s, policy.scale_down_stabilization_s)


def _window(
    recs: tuple[tuple[float, int], ...], now: float, horizon: float
) -> tuple[tuple[float, int], ...]:
    return tuple((t, r) for t, r in recs if now - t <= horizon)
