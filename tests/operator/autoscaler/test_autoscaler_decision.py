"""The decision function: table-driven cases, then properties over generated inputs."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloserve_operator.autoscaler.decision import (
    Decision,
    History,
    Observation,
    PodSample,
    Reason,
    ScalingPolicy,
    decide,
)

POLICY = ScalingPolicy(
    min_replicas=1,
    max_replicas=10,
    kv_pressure_target=0.8,
    slo_attainment_target=0.95,
    scale_up_stabilization_s=0.0,
    scale_down_stabilization_s=0.0,
)


def pods(*kv: float | None, att: float | None = 0.99, done: float = 10.0, age: float = 0.0):
    return tuple(PodSample(f"p{i}", k, att, done, age) for i, k in enumerate(kv))


def obs(current: int, samples, ready: int | None = None, **kw) -> Observation:
    return Observation(
        now=kw.pop("now", 100.0),
        current_replicas=current,
        ready_replicas=len(samples) if ready is None else ready,
        samples=samples,
        **kw,
    )


@dataclass(frozen=True)
class Case:
    obs: Observation
    desired: int
    reason: Reason
    policy: ScalingPolicy = POLICY


CASES = {
    "kv at target: steady": Case(obs(2, pods(0.8, 0.8)), 2, Reason.STEADY),
    "kv inside tolerance band: steady": Case(obs(2, pods(0.86, 0.86)), 2, Reason.STEADY),
    "kv above band: ceil(sum/target)": Case(obs(2, pods(1.2, 1.0)), 3, Reason.SCALE_UP_KV),
    "kv below band: scale down one step": Case(
        obs(4, pods(0.2, 0.2, 0.2, 0.2)), 3, Reason.SCALE_DOWN_KV
    ),
    "zero traffic still scales down (Dynamo #6985)": Case(
        obs(3, pods(0.0, 0.0, 0.0, att=None, done=0)), 2, Reason.SCALE_DOWN_KV
    ),
    "slo below target: ceil(ready*target/attainment)": Case(
        obs(2, pods(0.8, 0.8, att=0.9)), 3, Reason.SCALE_UP_SLO
    ),
    "slo sharp drop: fast path": Case(obs(2, pods(0.8, 0.8, att=0.5)), 4, Reason.SCALE_UP_SLO_FAST),
    "slo collapse bounded by step (+max(4, current))": Case(
        obs(1, pods(0.8, att=0.0)), 5, Reason.SCALE_UP_SLO_FAST
    ),
    "larger signal wins: kv over slo": Case(
        obs(8, pods(*[1.0] * 8, att=0.94)), 10, Reason.SCALE_UP_KV
    ),
    "backlog beyond a full cache is capped: +25 % not 6x": Case(
        obs(1, pods(5.0, att=None)), 2, Reason.SCALE_UP_KV
    ),
    "capped at max replicas": Case(obs(9, pods(*[2.0] * 9)), 10, Reason.TO_MAX_REPLICAS),
    "never below min replicas": Case(
        obs(2, pods(0.0, 0.0, att=None)), 2, Reason.STEADY, ScalingPolicy(min_replicas=2)
    ),
    "spec below min is raised": Case(obs(0, ()), 1, Reason.TO_MIN_REPLICAS),
    "spec above max is lowered": Case(obs(12, pods(0.8)), 10, Reason.TO_MAX_REPLICAS),
    "no samples at all: hold": Case(obs(3, (), ready=0), 3, Reason.NO_METRICS),
    "all samples stale: hold": Case(obs(3, pods(2.0, 2.0, 2.0, age=31.0)), 3, Reason.NO_METRICS),
    "NaN and missing metrics are ignored": Case(
        obs(2, pods(math.nan, None, att=math.nan)), 2, Reason.NO_METRICS
    ),
    "pod without finished requests has no attainment vote": Case(
        obs(2, (PodSample("a", 0.8, 0.1, 0.0), PodSample("b", 0.8, 0.99, 5.0))), 2, Reason.STEADY
    ),
    "attainment weighted by finished requests": Case(
        obs(2, (PodSample("a", 0.8, 0.5, 1.0), PodSample("b", 0.8, 0.99, 99.0))), 2, Reason.STEADY
    ),
    "ready pod without metrics counts as at target (no scale-down on ignorance)": Case(
        obs(3, pods(0.1), ready=3), 3, Reason.STEADY
    ),
    "rollout in progress: no scaling": Case(
        obs(2, pods(2.0, 2.0), rollout_in_progress=True), 2, Reason.ROLLOUT
    ),
    "pending pods (no GPU): no further scale-up": Case(
        obs(6, pods(*[1.0] * 5), ready=5, pending_replicas=1), 6, Reason.PENDING
    ),
    "pending pods while the asked-for size is still wanted: said so": Case(
        obs(3, pods(1.0, 1.0), ready=2, pending_replicas=1), 3, Reason.PENDING
    ),
    "pending pods do not block a scale-down": Case(
        obs(3, pods(0.1, 0.1), ready=2, pending_replicas=1), 2, Reason.SCALE_DOWN_KV
    ),
    "slo waits for replicas still starting": Case(
        obs(3, pods(0.8, 0.8, att=0.5), ready=2), 3, Reason.STEADY
    ),
}


@pytest.mark.parametrize("case", [pytest.param(c, id=k) for k, c in CASES.items()])
def test_decision_table(case: Case) -> None:
    d = decide(case.policy, case.obs)
    assert (d.desired_replicas, d.reason) == (case.desired, case.reason), d.message


def test_message_carries_inputs_and_result() -> None:
    d = decide(POLICY, obs(2, pods(0.9, 0.8, att=0.9)))
    assert d.message.startswith("ScaleUpSLO: desired=3")
    for part in ("kvPressure=0.850", "kvDesired=2", "attainment=0.900", "sloDesired=3", "pods=2"):
        assert part in d.message


def test_invalid_policy_names_every_problem() -> None:
    with pytest.raises(ValueError, match=r"max_replicas.*kv_pressure_target"):
        ScalingPolicy(min_replicas=5, max_replicas=2, kv_pressure_target=1.5)


def run(policy: ScalingPolicy, steps: list[tuple[float, Observation]]) -> list[Decision]:
    history, out = History(), []
    for _, o in steps:
        d = decide(policy, o, history)
        history = d.history
        out.append(d)
    return out


def test_scale_up_window_needs_a_sustained_recommendation() -> None:
    policy = ScalingPolicy(scale_up_stabilization_s=10, scale_down_stabilization_s=300)
    seq = [pods(0.8), pods(1.6), pods(1.6), pods(1.6)]
    ds = run(
        policy, [(t, obs(1, s, now=t)) for t, s in zip((0.0, 5.0, 10.0, 15.0), seq, strict=True)]
    )
    assert [d.desired_replicas for d in ds] == [1, 1, 1, 2]
    assert ds[1].reason is Reason.STABILIZING


def test_one_off_spike_inside_up_window_is_ignored() -> None:
    policy = ScalingPolicy(scale_up_stabilization_s=10, scale_down_stabilization_s=300)
    seq = [pods(0.8), pods(1.6), pods(0.8), pods(1.6)]
    ds = run(
        policy, [(t, obs(1, s, now=t)) for t, s in zip((0.0, 5.0, 10.0, 15.0), seq, strict=True)]
    )
    assert all(d.desired_replicas == 1 for d in ds)


def test_fast_path_skips_the_up_window() -> None:
    policy = ScalingPolicy(scale_up_stabilization_s=60)
    d = decide(policy, obs(1, pods(0.8, att=0.6)))
    assert (d.desired_replicas, d.reason) == (2, Reason.SCALE_UP_SLO_FAST)


def test_scale_down_waits_for_the_down_window() -> None:
    policy = ScalingPolicy(scale_up_stabilization_s=0, scale_down_stabilization_s=60)
    steps = [(0.0, obs(3, pods(0.8, 0.8, 0.8), now=0.0))]
    steps += [(t, obs(3, pods(0.1, 0.1, 0.1), now=t)) for t in range(5, 70, 5)]
    ds = run(policy, steps)
    first_down = next(t for (t, _), d in zip(steps, ds, strict=True) if d.desired_replicas < 3)
    assert first_down == 65  # the steady recommendation at t=0 leaves the window after 60 s
    assert ds[1].reason is Reason.STABILIZING


def test_a_failed_scrape_does_not_pin_the_down_window() -> None:
    """One pod missing at t=20 makes that evaluation conservative, not the next 30 s."""
    policy = ScalingPolicy(scale_up_stabilization_s=0, scale_down_stabilization_s=30)
    low, partial = pods(0.1, 0.1, 0.1), pods(0.1)
    steps = [(0.0, obs(3, pods(0.8, 0.8, 0.8), now=0.0))]
    steps += [(t, obs(3, partial if t == 20 else low, ready=3, now=t)) for t in range(5, 45, 5)]
    ds = run(policy, steps)
    assert ds[4].signals.recommendation == 3  # the partial evaluation itself holds
    first_down = next(t for (t, _), d in zip(steps, ds, strict=True) if d.desired_replicas < 3)
    assert first_down == 35


def test_slo_signal_settles_after_a_scale_up() -> None:
    """The 60 s attainment window still shows the old failures: no second SLO step at once."""
    policy = ScalingPolicy(slo_settle_s=30, scale_up_stabilization_s=0)
    first = decide(policy, obs(1, pods(0.8, att=0.5), now=0.0))
    assert (first.desired_replicas, first.reason) == (2, Reason.SCALE_UP_SLO_FAST)
    again = decide(policy, obs(2, pods(0.4, 0.4, att=0.5), now=20.0), first.history)
    assert (again.desired_replicas, again.signals.slo_desired) == (2, 2)
    later = decide(policy, obs(2, pods(0.4, 0.4, att=0.5), now=31.0), first.history)
    assert (later.desired_replicas, later.reason) == (4, Reason.SCALE_UP_SLO_FAST)


def test_slo_pressure_ceiling_blocks_the_2_to_1_scale_down() -> None:
    """At 1 replica attainment failed at pressure 0.7; at 2 replicas KV alone says 1."""
    h = decide(POLICY, obs(1, pods(0.7, att=0.8), now=0.0)).history
    assert h.slo_ceilings == ((0.0, 0.7),)
    d = decide(POLICY, obs(2, pods(0.35, 0.35), now=10.0), h)
    assert d.signals.kv_desired == 1
    assert (d.desired_replicas, d.reason) == (2, Reason.SLO_CEILING)
    # ...but a real load drop still scales down, and the memory expires.
    assert decide(POLICY, obs(2, pods(0.1, 0.1), now=10.0), h).desired_replicas == 1
    late = decide(POLICY, obs(2, pods(0.35, 0.35), now=2000.0), h)
    assert late.desired_replicas == 1


# ---- properties ---------------------------------------------------------------------------

sample = st.builds(
    PodSample,
    pod=st.just("p"),
    kv_pressure=st.none() | st.just(math.nan) | st.floats(0, 5),
    attainment=st.none() | st.just(math.nan) | st.floats(0, 1),
    finished_requests=st.floats(0, 100),
    age_s=st.floats(0, 60),
)
policies = st.builds(
    lambda lo, span, up, down: ScalingPolicy(
        min_replicas=lo,
        max_replicas=lo + span,
        scale_up_max_step=up,
        scale_down_max_step=down,
        scale_up_stabilization_s=0,
        scale_down_stabilization_s=0,
    ),
    st.integers(1, 5),
    st.integers(0, 20),
    st.integers(1, 8),
    st.integers(1, 8),
)


@settings(max_examples=300, deadline=None)
@given(
    policies,
    st.integers(0, 30),
    st.lists(sample, max_size=12),
    st.integers(0, 3),
    st.booleans(),
)
def test_bounds_and_steps_are_always_respected(policy, current, samples, pending, rollout) -> None:
    o = Observation(100.0, current, len(samples), pending, rollout, samples)
    d = decide(policy, o)
    assert policy.min_replicas <= d.desired_replicas <= policy.max_replicas
    if policy.min_replicas <= current <= policy.max_replicas:
        assert d.desired_replicas <= current + max(policy.scale_up_max_step, current)
        assert d.desired_replicas >= current - policy.scale_down_max_step
        if rollout:
            assert d.desired_replicas == current
        if pending:
            assert d.desired_replicas <= current
    assert d.reason.changes_replicas == (d.desired_replicas != current)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10), st.floats(0, 3), st.floats(0, 3), st.floats(0.5, 1))
def test_monotone_in_kv_pressure(current, p1, p2, att) -> None:
    lo, hi = sorted((p1, p2))
    policy = ScalingPolicy(
        max_replicas=40, scale_up_stabilization_s=0, scale_down_stabilization_s=0
    )
    d_lo = decide(policy, obs(current, pods(*[lo] * current, att=att)))
    d_hi = decide(policy, obs(current, pods(*[hi] * current, att=att)))
    assert d_lo.desired_replicas <= d_hi.desired_replicas


def _flaps(sizes: list[int]) -> list[tuple[int, ...]]:
    moves = [size for size, _ in itertools.groupby([1, *sizes])]
    return [w for w in zip(moves, moves[1:], moves[2:], moves[3:], strict=False) if w[:2] == w[2:]]


def _closed_loop(
    policy: ScalingPolicy, demand: float, capacity_at_slo: float, steps: int
) -> list[int]:
    """A service with constant total KV demand; attainment fails when a pod carries too much."""
    replicas, history, t, sizes = 1, History(), 0.0, []
    for _ in range(steps):
        per_pod = demand / replicas
        att = 0.99 if per_pod <= capacity_at_slo else 0.6
        d = decide(policy, obs(replicas, pods(*[per_pod] * replicas, att=att), now=t), history)
        history, replicas, t = d.history, d.desired_replicas, t + 5.0
        sizes.append(replicas)
    return sizes


@settings(max_examples=150, deadline=None)
@given(st.floats(0.05, 6.0), st.floats(0.2, 1.0))
def test_no_two_size_oscillation_under_steady_load(demand, capacity_at_slo) -> None:
    """Under constant load the loop converges and never flaps a -> b -> a -> b. One probe
    below the size that holds the SLO is allowed: that is how the pressure ceiling is learned."""
    policy = ScalingPolicy(
        max_replicas=20, scale_up_stabilization_s=10, scale_down_stabilization_s=30
    )
    sizes = _closed_loop(policy, demand, capacity_at_slo, steps=400)
    assert len(set(sizes[200:])) == 1, f"not converged: {sorted(set(sizes[200:]))}"
    assert not _flaps(sizes), sizes


def test_without_the_pressure_ceiling_the_same_loop_flaps() -> None:
    """The property above can fail: with no ceiling memory, KV alone says 1, SLO says 2."""
    policy = ScalingPolicy(scale_up_stabilization_s=10, scale_down_stabilization_s=30)
    assert not _flaps(_closed_loop(policy, 0.7, 0.5, steps=400))
    forgetful = replace(policy, slo_ceiling_memory_s=0)
    assert _flaps(_closed_loop(forgetful, 0.7, 0.5, steps=400))
