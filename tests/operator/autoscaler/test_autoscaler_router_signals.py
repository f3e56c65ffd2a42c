"""The router tier's view in the decision, and scale to zero and back (pure, no clock)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloserve_operator.autoscaler.decision import (
    Decision,
    History,
    Observation,
    PodSample,
    Reason,
    RouterSample,
    ScalingPolicy,
    decide,
)

POLICY = ScalingPolicy(
    min_replicas=1,
    max_replicas=10,
    slo_attainment_target=0.9,
    scale_up_stabilization_s=0.0,
    scale_down_stabilization_s=300.0,
)
ZERO = replace(POLICY, min_replicas=0, scale_to_zero_after_s=900.0)
IDLE_ROUTER = RouterSample(queued=0, outcomes=0, missed=0)


def pod(
    name: str = "p0",
    kv: float = 0.5,
    att: float | None = 1.0,
    done: float = 10.0,
    busy: float | None = 0.0,
    started: float = 10.0,
) -> PodSample:
    return PodSample(name, kv, att, done, busy=busy, started=started)


def observe(current: int, *samples: PodSample, now: float = 100.0, **kw) -> Observation:
    return Observation(
        now=now, current_replicas=current, ready_replicas=len(samples), samples=samples, **kw
    )


def test_router_rejections_count_as_misses_and_scale_up() -> None:
    # Engines met the SLO for all 10 they finished, but the routers turned 10 more away.
    d = decide(POLICY, observe(2, pod(), pod("p1"), router=RouterSample(0, 30, 10)))
    assert d.signals.attainment == pytest.approx(20 / 30)
    assert d.desired_replicas > 2
    assert d.reason in {Reason.SCALE_UP_SLO, Reason.SCALE_UP_SLO_FAST}


LEAD = ScalingPolicy(slo_attainment_target=0.9)
"""The operator's defaults for a spec with ``slo.attainmentTarget`` 0.9 (10 s up-window)."""


def test_turned_away_while_the_engine_scrape_failed_sizes_from_the_served_share() -> None:
    """Bench, 2026-12-03 17:03, t=40 s: the one engine's scrape timed out and the router had
    turned 15 away, which read as attainment 0 and asked for 18 replicas (5 after the step
    bound) where 2 carry the load. The routers answered 60 in that window: 45 served."""
    obs = Observation(100.0, 1, 1, samples=(), router=RouterSample(0, 60, 15))
    d = decide(LEAD, obs)
    assert d.signals.attainment == pytest.approx(0.75)
    assert (d.desired_replicas, d.reason) == (2, Reason.SCALE_UP_SLO_FAST)


def test_misses_counted_over_failed_router_reads_do_not_read_as_a_collapse() -> None:
    """Bench, t=361 s: the router's reads had failed for ~100 s; its next delta held those
    seconds' 13 misses (of ~1,100 answers) against 8 finishes of the one pod that answered in
    5 s. Read as 8 / 21 = 0.38 that asked for 7 replicas; as ratios it is no SLO problem."""
    pods = (pod(kv=0.2, att=1.0, done=8.0),)
    obs = Observation(100.0, 3, 3, samples=pods, router=RouterSample(0, 1100, 13))
    d = decide(LEAD, obs)
    assert d.signals.attainment == pytest.approx(1 - 13 / 1100)
    assert d.signals.slo_desired is None
    assert d.desired_replicas <= 3


def test_a_window_with_nothing_served_asks_for_one_more_not_twenty_times() -> None:
    busy = (pod(att=None, done=0.0, busy=20.0), pod("p1", att=None, done=0.0, busy=20.0))
    d = decide(LEAD, observe(2, *busy, router=RouterSample(0, 20, 20)))
    assert d.signals.attainment == 0.0
    assert (d.desired_replicas, d.reason) == (3, Reason.SCALE_UP_SLO_FAST)


@settings(max_examples=200, deadline=None)
@given(
    engine=st.floats(0.0, 1.0),
    weight=st.floats(1.0, 500.0),
    answered=st.floats(1.0, 500.0),
    missed_share=st.floats(0.0, 1.0),
    span=st.floats(1.0, 50.0),
)
def test_attainment_is_a_ratio_of_ratios(
    engine: float, weight: float, answered: float, missed_share: float, span: float
) -> None:
    """However many intervals the router's counters cover, the attainment stays the same;
    it never exceeds the engines' own, and more turned away never raises it."""

    def att(outcomes: float, missed: float) -> float | None:
        obs = observe(1, pod(att=engine, done=weight), router=RouterSample(0, outcomes, missed))
        return decide(POLICY, obs).signals.attainment

    missed = answered * missed_share
    one = att(answered, missed)
    assert one is not None and 0.0 <= one <= engine + 1e-9
    assert att(answered * span, missed * span) == pytest.approx(one)
    more = att(answered, min(answered, missed + 1.0))
    assert more is not None and more <= one + 1e-9


def test_nothing_finished_while_requests_wait_reads_zero_not_full() -> None:
    busy = pod(att=None, done=0.0, busy=8.0)
    d = decide(POLICY, observe(1, busy, router=RouterSample(queued=5, outcomes=0, missed=0)))
    assert d.signals.attainment == 0.0
    assert d.desired_replicas > 1
    # Without a queue the same window is unknown, never 100 %.
    d = decide(POLICY, observe(1, busy, router=IDLE_ROUTER))
    assert d.signals.attainment is None


def test_a_queue_that_does_not_shrink_asks_for_replicas() -> None:
    router = RouterSample(queued=6, outcomes=20, missed=0)
    d = decide(POLICY, observe(2, pod(), pod("p1"), router=router), History(last_queued=4))
    assert (d.desired_replicas, d.reason) == (3, Reason.SCALE_UP_QUEUE)
    assert d.signals.queue_desired == 3
    # With a learned capacity of 3 requests per replica, 6 queued need 2 more.
    d = decide(
        POLICY,
        observe(2, pod(), pod("p1"), router=router),
        History(last_queued=4, replica_capacity=3.0),
    )
    assert d.desired_replicas == 4
    # A shrinking queue is being drained by the replicas there are.
    d = decide(POLICY, observe(2, pod(), pod("p1"), router=router), History(last_queued=9))
    assert d.signals.queue_desired is None


def test_capacity_is_learned_only_near_the_kv_target_within_slo() -> None:
    light = decide(POLICY, observe(1, pod(kv=0.1, busy=2.0), router=IDLE_ROUTER))
    assert light.history.replica_capacity is None
    full = decide(POLICY, observe(1, pod(kv=0.8, busy=12.0), router=IDLE_ROUTER))
    assert full.history.replica_capacity == 12.0


def test_idle_service_goes_to_zero_after_the_window_and_not_before() -> None:
    history = History()
    t = 0.0
    d = decide(ZERO, observe(1, pod(busy=0.0), now=t, router=IDLE_ROUTER), history)
    while t < 2000 and d.desired_replicas > 0:
        t += 5.0
        d = decide(
            ZERO,
            observe(1, pod(busy=0.0, done=0.0, att=None), now=t, router=IDLE_ROUTER),
            d.history,
        )
    assert d.reason is Reason.SCALE_TO_ZERO
    assert t == pytest.approx(ZERO.scale_to_zero_after_s)
    assert d.activity == "Idle"


def test_never_zero_without_the_router_view_or_with_min_one() -> None:
    d = decide(ZERO, observe(1, pod(), now=0.0, router=None), History(last_activity=None))
    for t in range(5, 3000, 5):
        d = decide(ZERO, observe(1, pod(busy=0.0), now=float(t), router=None), d.history)
    assert d.desired_replicas == 1  # no router answered: activity unknown, never idle
    d = decide(
        POLICY,
        observe(1, pod(busy=0.0), now=5000.0, router=IDLE_ROUTER),
        History(last_activity=0.0),
    )
    assert d.desired_replicas == 1
    # Normal signals never take a min-0 service below one replica either.
    d = decide(
        ZERO,
        observe(2, pod(kv=0.0), pod("p1", kv=0.0), now=500.0, router=IDLE_ROUTER),
        History(last_activity=450.0),
    )
    assert d.desired_replicas >= 1


def test_no_flapping_a_request_every_few_minutes_keeps_one_replica() -> None:
    """One request every 4 minutes for 3 hours: never a scale to zero, never a wake."""
    d = decide(ZERO, observe(1, pod(busy=0.0), now=0.0, router=IDLE_ROUTER))
    reasons = []
    for t in range(5, 3 * 3600, 5):
        arrived = 1 if t % 240 == 0 else 0
        router = RouterSample(queued=0, outcomes=arrived, missed=0)
        d = decide(
            ZERO, observe(d.desired_replicas, pod(busy=0.0), now=float(t), router=router), d.history
        )
        reasons.append(d.reason)
    assert Reason.SCALE_TO_ZERO not in reasons and Reason.SCALE_FROM_ZERO not in reasons
    assert d.desired_replicas == 1


def test_a_long_running_request_keeps_the_service_awake() -> None:
    d = decide(ZERO, observe(1, pod(), now=0.0, router=IDLE_ROUTER))
    for t in range(5, 2000, 5):
        d = decide(ZERO, observe(1, pod(busy=1.0), now=float(t), router=IDLE_ROUTER), d.history)
    assert d.desired_replicas == 1


def _at_zero(queued: float, capacity: float | None = None, outcomes: float = 0) -> Decision:
    history = History(last_activity=0.0, replica_capacity=capacity)
    router = RouterSample(queued=queued, outcomes=outcomes, missed=0)
    return decide(ZERO, observe(0, now=5000.0, router=router), history)


def test_at_zero_without_requests_stays_idle() -> None:
    d = _at_zero(0)
    assert (d.desired_replicas, d.reason, d.activity) == (0, Reason.IDLE, "Idle")
    assert d.signals.idle_s == 5000.0


def test_a_held_request_wakes_at_once_to_what_the_queue_needs() -> None:
    d = _at_zero(1)
    assert (d.desired_replicas, d.reason, d.activity) == (1, Reason.SCALE_FROM_ZERO, "Waking")
    assert d.history.woke_at == 5000.0
    # 50 held requests and a learned capacity of 12 per replica: 5 replicas, no up-window.
    slow = replace(ZERO, scale_up_stabilization_s=600.0)
    d = decide(
        slow, observe(0, now=1.0, router=RouterSample(50, 0, 0)), History(replica_capacity=12.0)
    )
    assert d.desired_replicas == 5
    assert _at_zero(500, capacity=1.0).desired_replicas == ZERO.max_replicas
    # A request that already timed out at zero also wakes it.
    assert _at_zero(0, outcomes=1).desired_replicas == 1


def test_cold_start_is_measured_from_the_wake_to_the_first_request_served() -> None:
    d = _at_zero(3)
    starting = observe(1, now=5010.0, router=RouterSample(3, 0, 0))
    d = decide(ZERO, replace(starting, ready_replicas=0), d.history)
    assert d.cold_start_s is None and d.activity == "Waking"
    # Ready but nothing served yet: still waking; the held queue does not ask for more.
    d = decide(
        ZERO,
        observe(
            1,
            pod(started=0.0, busy=0.0, att=None, done=0.0),
            now=5030.0,
            router=RouterSample(3, 0, 0),
        ),
        d.history,
    )
    assert d.cold_start_s is None and d.activity == "Waking"
    assert d.desired_replicas == 1
    d = decide(
        ZERO,
        observe(1, pod(started=1.0, busy=3.0, att=None, done=0.0), now=5042.0, router=IDLE_ROUTER),
        d.history,
    )
    assert d.cold_start_s == pytest.approx(42.0)
    assert d.activity == "Active"
    d = decide(ZERO, observe(1, pod(started=4.0), now=5047.0, router=IDLE_ROUTER), d.history)
    assert d.cold_start_s is None  # reported once


def test_policy_accepts_zero_minimum_but_not_negative() -> None:
    assert ScalingPolicy(min_replicas=0).min_replicas == 0
    with pytest.raises(ValueError, match="min_replicas"):
        ScalingPolicy(min_replicas=-1)
    with pytest.raises(ValueError, match="scale_to_zero_after_s"):
        ScalingPolicy(min_replicas=0, scale_to_zero_after_s=0)


def test_a_failed_router_read_neither_restarts_the_idle_clock_nor_goes_to_zero() -> None:
    d = decide(ZERO, observe(1, pod(busy=0.0), now=0.0, router=IDLE_ROUTER))
    for t in range(5, 900, 5):
        router = None if t % 30 == 0 else IDLE_ROUTER  # every sixth read times out
        d = decide(ZERO, observe(1, pod(busy=0.0), now=float(t), router=router), d.history)
        assert d.desired_replicas == 1
    assert (
        decide(ZERO, observe(1, pod(busy=0.0), now=900.0, router=None), d.history).desired_replicas
        == 1
    )
    gone = decide(ZERO, observe(1, pod(busy=0.0), now=900.0, router=IDLE_ROUTER), d.history)
    assert (gone.desired_replicas, gone.reason) == (0, Reason.SCALE_TO_ZERO)


def test_engine_misses_below_a_pressure_that_met_the_slo_add_no_replicas() -> None:
    """Bench, 2026-12-03 17:42, t=105 s and 150 s: four, then five engines at KV pressure 0.1
    and 0.04 missed 22-27 % (CPU-starved simulated engines), where one engine at 0.27 had met
    the SLO; the SLO signal went 4 -> 5 -> 7 and its ceiling of 0.04 blocked every scale-down."""
    first = decide(LEAD, observe(1, pod(kv=0.3, att=1.0, done=20.0), now=95.0))
    assert first.history.slo_met_pressure is None  # one window is not enough
    met = decide(LEAD, observe(1, pod(kv=0.27, att=1.0, done=20.0)), first.history)
    assert met.history.slo_met_pressure == (100.0, 0.27)  # two in a row: the lower of the two
    starved = (pod(kv=0.1, att=0.75, done=40.0), pod("p1", kv=0.1, att=0.75, done=40.0))
    d = decide(LEAD, observe(2, *starved, now=200.0), met.history)
    assert d.signals.attainment == pytest.approx(0.75)  # still reported as measured
    assert d.signals.slo_desired is None and d.desired_replicas <= 2
    assert d.history.slo_ceilings == ()  # and no ceiling learned from it
    # The routers' turn-aways are capacity misses whatever the pressure: they still count.
    d = decide(LEAD, observe(2, *starved, now=200.0, router=RouterSample(0, 80, 40)), met.history)
    assert d.signals.slo_desired == 4
    assert d.history.slo_ceilings == ()  # but they teach no ceiling below a met pressure
    # At or above the pressure that met the SLO, engine misses ask for replicas as before.
    loaded = (pod(kv=0.5, att=0.6, done=40.0), pod("p1", kv=0.5, att=0.6, done=40.0))
    assert decide(LEAD, observe(2, *loaded, now=200.0), met.history).desired_replicas == 3
    # The memory lapses like the ceilings' does.
    late = 100.0 + LEAD.slo_ceiling_memory_s + 1
    assert decide(LEAD, observe(2, *starved, now=late), met.history).signals.slo_desired == 3


def test_a_queue_seen_once_asks_for_nothing_and_the_fast_path_does_not_carry_it() -> None:
    router = RouterSample(queued=1, outcomes=20, missed=0)
    d = decide(POLICY, observe(3, pod(), pod("p1"), pod("p2"), router=router))
    assert d.signals.queue_desired is None  # one moment's hold
    d = decide(POLICY, observe(3, pod(), pod("p1"), pod("p2"), router=router), d.history)
    assert d.signals.queue_desired == 4  # held at two decisions in a row
    # Attainment far below target while settling: the SLO signal holds at 3, and the fast
    # path must not let the queue's 4 skip the up-window (10 s; recommended 3 just before).
    pods = (pod(att=0.1), pod("p1", att=0.1), pod("p2", att=0.1))
    history = History(recommendations=((95.0, 3),), last_scale_up=90.0, last_queued=1.0)
    d = decide(LEAD, observe(3, *pods, router=router), history)
    assert (d.signals.fast_path, d.signals.queue_desired) == (True, 4)
    assert d.desired_replicas == 3


def test_one_full_window_at_a_step_does_not_teach_the_met_pressure() -> None:
    """A step: the first window has a full cache whose requests still met the SLO, the next
    misses. Learned from that one window, 1.0 would silence engine misses under 0.9."""
    d = decide(LEAD, observe(1, pod(kv=0.2, att=1.0), now=0.0))
    d = decide(LEAD, observe(1, pod(kv=0.2, att=1.0), now=5.0), d.history)
    d = decide(LEAD, observe(1, pod(kv=1.0, att=1.0), now=10.0), d.history)
    d = decide(LEAD, observe(1, pod(kv=1.0, att=0.4), now=15.0), d.history)
    assert d.history.slo_met_pressure == (10.0, 0.2)  # min(1.0, 0.2): refreshed, not raised
    # Later, two replicas at 0.6 missing are still a lack of replicas.
    two = (pod(kv=0.6, att=0.5), pod("p1", kv=0.6, att=0.5))
    assert decide(LEAD, observe(2, *two, now=100.0), d.history).signals.slo_desired == 4
