from __future__ import annotations

from collections import Counter

import pytest
from router_builders import COST, demand, snap

from sloserve_engine.contract.slo import SLO
from sloserve_engine.router.placement import (
    PLACEMENT_NAMES,
    BanditPlacement,
    EngineState,
    Pending,
    PlacementRequest,
    judge,
    kv_fits,
    make_placement,
    predict_ttft,
)

REQ = PlacementRequest("r", demand(1000, 300), SLO(ttft_ms=1000), 0.0, 0.0)


def states() -> list[EngineState]:
    return [
        EngineState(
            snap(
                "busy",
                free=10_000,
                reserved=5_000,
                waiting=8,
                waiting_prompt=20_000,
                delay=1.5,
                running=200,
                drain=5_000,
            )
        ),
        EngineState(
            snap(
                "mid",
                free=40_000,
                reserved=5_000,
                waiting=1,
                waiting_prompt=2_000,
                delay=0.1,
                running=100,
                drain=5_000,
            )
        ),
        EngineState(snap("idle", free=97_000, reserved=0, running=10, drain=1_000)),
    ]


def test_predicted_ttft_grows_with_queue_pending_and_kv_wait() -> None:
    base = EngineState(snap(free=50_000, running=10, drain=10_000))
    t0 = predict_ttft(base, REQ.demand, COST)
    assert 0 < t0 < 0.1
    pend = EngineState(base.snapshot, Pending(5, 20_000, 25_000))
    assert predict_ttft(pend, REQ.demand, COST) > t0 + 0.3
    full = EngineState(snap(free=500, running=10, drain=1_000))
    assert predict_ttft(full, REQ.demand, COST) == pytest.approx(0.5 + t0, rel=0.05)


def test_kv_fits_counts_pending_and_drain_within_horizon() -> None:
    s = EngineState(snap(free=2_000, reserved=500, drain=0.0))
    assert kv_fits(s, demand(1000, 300), 1.0)
    assert not kv_fits(EngineState(s.snapshot, Pending(1, 200, 300)), demand(1000, 300), 1.0)
    slow = EngineState(snap(free=1_000, drain=500.0))
    assert not kv_fits(slow, demand(1000, 300), 0.5)
    assert kv_fits(slow, demand(1000, 300), 1.0)


def test_judge_uses_the_remaining_budget() -> None:
    s = states()[1]
    assert judge(s, REQ, COST).feasible
    late = PlacementRequest("r", REQ.demand, REQ.slo, waited_s=0.95, now=0.0)
    assert not judge(s, late, COST).ttft_ok


@pytest.mark.parametrize("name", PLACEMENT_NAMES)
def test_every_policy_ranks_every_engine_once(name: str) -> None:
    ranked = make_placement(name, COST, seed=1).rank(REQ, states())
    assert sorted(c.engine_id for c in ranked) == ["busy", "idle", "mid"]


@pytest.mark.parametrize("name", ["least-kv", "dynamo", "slo-greedy", "sloserve"])
def test_load_aware_policies_avoid_the_busy_engine(name: str) -> None:
    policy = make_placement(name, COST, seed=2)
    firsts = Counter(policy.rank(REQ, states())[0].engine_id for _ in range(50))
    assert firsts["busy"] == 0


def test_random_and_p2c_spread() -> None:
    for name in ("random", "p2c"):
        policy = make_placement(name, COST, seed=3)
        firsts = Counter(policy.rank(REQ, states())[0].engine_id for _ in range(300))
        assert len(firsts) == (3 if name == "random" else 2), (name, firsts)
        assert firsts["busy"] == 0 if name == "p2c" else firsts["busy"] > 50


def test_slo_greedy_puts_infeasible_last() -> None:
    ranked = make_placement("slo-greedy", COST).rank(REQ, states())
    assert [c.feasible for c in ranked] == [True, True, False]


def test_least_kv_ignores_own_pending_but_dynamo_counts_it() -> None:
    a = EngineState(snap("a", free=60_000), Pending(10, 50_000, 60_000))
    b = EngineState(snap("b", free=50_000))
    assert make_placement("least-kv", COST).rank(REQ, [a, b])[0].engine_id == "a"
    assert make_placement("dynamo", COST).rank(REQ, [a, b])[0].engine_id == "b"


def test_bandit_learns_to_prefer_the_rewarded_context() -> None:
    # Two feasible engines; the fuller one always misses the SLO, the emptier one meets it.
    engines = [
        EngineState(snap("full", free=30_000, running=50, drain=5_000)),
        EngineState(snap("empty", free=90_000, running=50, drain=5_000)),
    ]
    bandit = BanditPlacement(COST, seed=0, top_k=2, alpha=0.5)
    picks = []
    for k in range(300):
        req = PlacementRequest(str(k), REQ.demand, REQ.slo, 0.0, 0.0)
        first = bandit.rank(req, engines)[0].engine_id
        picks.append(first)
        bandit.feedback(str(k), 1.0 if first == "empty" else 0.0)
    assert bandit.updates == 300
    assert picks[-100:].count("empty") > 90
    bandit.feedback("unknown", 1.0)  # outcomes of unranked requests are ignored
    assert bandit.updates == 300


def test_unknown_policy_is_named() -> None:
    with pytest.raises(ValueError, match="least-kvv"):
        make_placement("least-kvv", COST)


def test_ttft_margin_shrinks_the_budget() -> None:
    s = EngineState(snap(delay=0.6))
    assert judge(s, REQ, COST).ttft_ok
    tight = PlacementRequest("r", REQ.demand, REQ.slo, 0.0, 0.0, ttft_margin=0.5)
    assert not judge(s, tight, COST).ttft_ok
    # Time already waited in the router's queue shrinks what is left to share.
    short = EngineState(snap(delay=0.3))
    assert judge(short, tight, COST).ttft_ok
    late = PlacementRequest("r", REQ.demand, REQ.slo, 0.5, 0.0, ttft_margin=0.5)
    assert not judge(short, late, COST).ttft_ok


def test_ttft_margin_never_refuses_what_an_idle_engine_serves_in_time() -> None:
    # A long prompt under a tight SLO: its own prefill takes most of the target, so a margin
    # on the whole TTFT would refuse it on an empty engine; the margin covers only the wait.
    idle = EngineState(snap(free=97_000, reserved=0, running=0, delay=0.0))
    long_prompt = PlacementRequest(
        "r", demand(7000, 100), SLO(ttft_ms=250), 0.0, 0.0, ttft_margin=0.2
    )
    cand = judge(idle, long_prompt, COST)
    assert 0.125 < cand.predicted_ttft_s < 0.25  # > 0.2 × 250 ms, < 250 ms
    assert cand.feasible
    queued = EngineState(snap(free=97_000, reserved=0, running=0, delay=0.05))
    assert not judge(queued, long_prompt, COST).ttft_ok
