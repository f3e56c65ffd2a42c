"""Bench bookkeeping: the numbers docs/benchmarks.md reports are computed here."""

from __future__ import annotations

import pytest

from sloserve_dev.autoscaler.bench import (
    LoadBucket,
    client_attainment,
    count_flaps,
    e2e_bound_s,
    episode_from_json,
    generator_drift,
    load_buckets,
    step_trace,
    summarize,
    violation_minutes,
)
from sloserve_dev.autoscaler.harness import DecisionLog, Episode, Row, RunConfig
from sloserve_dev.autoscaler.loadgen import Served
from sloserve_dev.autoscaler.trace import Phase, Workload, arrivals, rate_at


def row(t: float, ready: int, att: float | None, ok: float = 0, miss: float = 0) -> Row:
    return Row(t, 1.0, ready, ready, 0, 0.5, 0.5, att, ok, miss)


def test_step_trace_and_rate_lookup() -> None:
    trace = step_trace(10.0, 0.3, 2.0, (60, 240, 600))
    assert trace == [Phase(60, 3.0), Phase(240, 20.0), Phase(600, 3.0)]
    assert [rate_at(trace, t) for t in (0, 59.9, 60, 239, 240, 700)] == [3, 3, 20, 20, 3, 0]


def test_violation_minutes_count_buckets_below_target() -> None:
    rows = [
        row(0, 1, None, ok=10),  # bucket 0: 100 %
        row(10, 1, None, ok=5, miss=5),  # bucket 1: 50 %
        row(15, 1, None, ok=4, miss=0),  # bucket 1 now 9/14 = 64 %
        row(20, 1, None),  # bucket 2: nothing finished, nothing waiting: not a violation
        row(30, 1, None, ok=9, miss=1),  # bucket 3: exactly 90 %
    ]
    assert violation_minutes(rows, 0.9) == pytest.approx(10 / 60)


def test_nothing_finished_while_requests_wait_is_a_violation() -> None:
    waiting = Row(40, 1.0, 1, 1, 0, 0.5, 0.5, None, 0, 0, outstanding=12)
    assert violation_minutes([waiting], 0.9) == pytest.approx(10 / 60)


def test_flaps_are_repeated_two_size_alternations() -> None:
    assert count_flaps([1, 2, 3, 2]) == 0
    assert count_flaps([1, 2, 1, 2]) == 1
    assert count_flaps([2, 2, 1, 1, 2, 1, 2]) == 2


def test_summary_of_a_small_episode() -> None:
    ep = Episode("x", [Phase(10, 1), Phase(40, 5), Phase(60, 1)], RunConfig())
    ep.rows = [
        row(0, 1, 1.0, ok=5),
        row(10, 1, 0.95, ok=5),
        row(15, 1, 0.7, ok=1, miss=4),
        row(20, 2, 0.8, ok=3, miss=2),
        row(30, 3, 0.92, ok=9),
        row(45, 3, 0.99, ok=9),
        row(60, 2, 1.0, ok=9),
    ]
    ep.decisions = [
        DecisionLog(12, 1, 2, "ScaleUpSLOFastPath", ""),
        DecisionLog(20, 2, 3, "ScaleUpKVPressure", ""),
        DecisionLog(55, 3, 2, "ScaleDownKVPressure", ""),
    ]
    s = summarize(ep, 0.9)
    assert (s.reaction_from_step_s, s.reaction_from_violation_s) == (2, -3)
    assert s.recovery_s == 15
    assert s.scale_down_after_drop_s == 15
    assert (s.peak_replicas, s.flaps, s.decisions) == (3, 0, 3)
    assert s.attainment == pytest.approx(41 / 47)
    assert s.replica_minutes == pytest.approx((10 + 5 + 5 + 20 + 45 + 45) / 60)


def test_steady_trace_has_no_step_reaction() -> None:
    ep = Episode("x", [Phase(100, 5)], RunConfig())
    ep.rows = [row(0, 2, 1.0, ok=5), row(50, 2, 0.95, ok=5), row(100, 2, 0.97, ok=5)]
    ep.decisions = [DecisionLog(20, 1, 2, "ScaleUpKVPressure", "")]
    s = summarize(ep, 0.9)
    assert (s.reaction_from_step_s, s.scale_down_after_drop_s, s.flaps) == (None, None, 0)


def test_client_side_bound_and_attainment() -> None:
    assert e2e_bound_s(1) == pytest.approx(1.0)  # default SLO: TTFT 1 s, mean TBT 100 ms
    assert e2e_bound_s(101) == pytest.approx(11.0)
    requests = [
        Served(0.0, 2.0, 200, 101),  # within 11 s, answered at 2 s: bucket 0
        Served(1.0, 12.0, 200, 101),  # over the bound, answered at 13 s: bucket 1
        Served(2.0, 0.5, 429, 50),  # turned away: a miss, bucket 0
        Served(3.0, 9.0, 200, 101),  # bucket 1, within
    ]
    att, minutes = client_attainment(requests, 0.9) or (None, None)
    assert att == pytest.approx(2 / 4)
    assert minutes == pytest.approx(20 / 60)  # both buckets at 50 %
    assert client_attainment([Served(0.0, 1.0, 200)], 0.9) is None  # no token counts


def test_client_errors_count_as_misses_but_router_turn_aways_only_once() -> None:
    ep = Episode("x", [Phase(100, 5)], RunConfig(routers=1))
    ep.rows = [row(0, 1, 1.0, ok=9), row(10, 1, 1.0, ok=9, miss=1), row(20, 1, 1.0, ok=10)]
    # The 429 is already in the rows' misses (the recorder reads the router); the 502 and
    # the dropped connection are not, and land in the bucket in which they ended.
    ep.requests = [
        Served(10.0, 1.0, 429, 64),
        Served(20.0, 1.0, 502, 64),
        Served(21.0, 2.0, 0, 64),
    ]
    s = summarize(ep, 0.9)
    assert s.client_errors == 2
    assert s.attainment == pytest.approx(28 / 31)
    assert s.violation_minutes == pytest.approx(10 / 60)  # bucket 2: 10 of 12


def test_saved_episodes_reload_and_replay_their_token_counts() -> None:
    trace = [Phase(5, 2.0), Phase(10, 0.0), Phase(20, 4.0)]
    sent = list(arrivals(trace, Workload(), 3))
    assert sent == list(arrivals(trace, Workload(), 3))  # seeded
    ep = Episode("x", trace, RunConfig(seed=3))
    ep.rows = [row(0, 1, 1.0, ok=5)]
    # Answers recorded in completion order, without token counts (older episodes).
    ep.requests = [Served(t, 1.0 + i % 3, 200) for i, (t, _) in enumerate(sent)][::-1]
    again = episode_from_json(ep.to_json())
    by_time = sorted(again.requests, key=lambda r: r.sent_at)
    assert [r.max_tokens for r in by_time] == [b["max_tokens"] for _, b in sent]
    assert summarize(again, 0.9) == summarize(episode_from_json(again.to_json()), 0.9)


def test_sent_and_planned_requests_per_twenty_seconds() -> None:
    buckets = load_buckets([1.0, 5.0, 19.9, 20.0, 45.0], [1.2, 21.0, 22.0, 23.0])
    assert buckets == (LoadBucket(0, 3, 1), LoadBucket(20, 1, 3), LoadBucket(40, 1, 0))
    assert generator_drift(buckets) == pytest.approx(2.0)  # 3 sent where 1 was planned
    assert generator_drift(load_buckets([], [])) is None


def test_summary_compares_what_was_sent_with_the_plan() -> None:
    trace = [Phase(30, 2.0), Phase(60, 6.0)]
    ep = Episode("x", trace, RunConfig(seed=5))
    ep.rows = [row(0, 1, 1.0, ok=5)]
    plan = [t for t, _ in arrivals(trace, Workload(), 5)]
    assert summarize(ep, 0.9).load == ()  # send times not recorded: no comparison
    ep.sent_at = [t for t in plan if t < 40]  # the generator stopped at 40 s
    s = summarize(episode_from_json(ep.to_json()), 0.9)
    assert [b.t for b in s.load] == [0, 20, 40]
    assert sum(b.planned for b in s.load) == len(plan)
    assert s.load[-1].sent == 0 and s.load[0].sent == s.load[0].planned
    assert s.generator_drift == pytest.approx(1.0)  # the last bucket got nothing
