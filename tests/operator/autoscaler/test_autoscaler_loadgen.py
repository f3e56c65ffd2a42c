"""The bench's load generator process: every planned request sent once, recorded once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sloserve_dev.autoscaler.bench import summarize
from sloserve_dev.autoscaler.fleet import EngineFleet
from sloserve_dev.autoscaler.harness import Episode, Row, RunConfig
from sloserve_dev.autoscaler.loadgen import LoadGenerator, LoadPlan, Picker
from sloserve_dev.autoscaler.trace import Phase, Workload, arrivals

pytestmark = pytest.mark.timeout(120)

SCALE = 10.0
DEAD = "http://127.0.0.1:9"  # nothing listens: the connection fails


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[str]:
    fleet = EngineFleet(
        ["--kv-tokens", "16384", "--served-model-name", "m", "--time-scale", str(SCALE)],
        18750,
        tmp_path,
    )
    try:
        await fleet.scale_to(1)
        while not fleet.ready():
            await asyncio.sleep(0.2)
        yield fleet.ready()[0].url
    finally:
        await fleet.close()


def test_placement_round_robin_and_least_in_flight() -> None:
    rr = Picker("round-robin")
    assert rr.pick() is None  # nowhere to send: the request fails at the client
    rr.targets = ["a", "b"]
    assert [rr.pick() for _ in range(4)] == ["b", "a", "b", "a"]
    least = Picker("least-in-flight")
    least.targets = ["a", "b", "c"]
    least.in_flight = {"a": 2, "b": 0, "c": 1}
    assert least.pick() == "b"


def test_the_plan_survives_its_trip_to_the_process() -> None:
    plan = LoadPlan(
        (Phase(5, 2.0), Phase(9, 0.5)), Workload((3, 4), (5, 6), "x"), 4, 2.5, "round-robin"
    )
    assert LoadPlan.from_json(plan.to_json()) == plan


async def test_every_planned_request_is_sent_once_and_recorded_once(
    engine: str, tmp_path: Path
) -> None:
    trace = (Phase(3.0, 10.0),)
    plan = list(arrivals(trace, Workload(), 11))
    load = LoadGenerator(tmp_path / "loadgen.log")
    await load.start(LoadPlan(trace, Workload(), 11, SCALE, "round-robin"))
    load.target([engine, DEAD])
    load.go(asyncio.get_running_loop().time())
    await load.finished()

    assert len(load.sent_at) == len(plan) > 10 and load.outstanding == 0
    assert sorted(r.index or 0 for r in load.requests) == list(range(len(plan)))
    by_index = {r.index: r for r in load.requests}
    assert [by_index[i].max_tokens for i in range(len(plan))] == [b["max_tokens"] for _, b in plan]
    statuses = [r.status for r in load.requests]
    assert set(statuses) == {0, 200}  # the dead target's requests failed at the client
    errors = statuses.count(0)
    assert errors in (len(plan) // 2, len(plan) - len(plan) // 2)

    # The bench counts the failures as misses nobody else counted.
    ep = Episode("x", list(trace), RunConfig(seed=11))
    ep.rows = [Row(0.0, 10.0, 1, 1, 0, 0.5, 0.5, 1.0, len(plan) - errors, 0.0)]
    ep.requests, ep.sent_at = load.requests, load.sent_at
    s = summarize(ep, 0.9)
    assert s.client_errors == errors
    assert s.attainment == pytest.approx((len(plan) - errors) / len(plan))
    assert s.client_attainment == pytest.approx((len(plan) - errors) / len(plan))
    assert sum(b.sent for b in s.load) == sum(b.planned for b in s.load) == len(plan)


async def test_stopped_mid_trace_nothing_is_recorded_twice(engine: str, tmp_path: Path) -> None:
    load = LoadGenerator(tmp_path / "loadgen.log")
    await load.start(LoadPlan((Phase(10_000.0, 5.0),), Workload(), 1, SCALE, "least-in-flight"))
    load.target([engine])
    load.go(asyncio.get_running_loop().time())
    while len(load.sent_at) < 5:
        await asyncio.sleep(0.05)
    await load.stop()
    indices = [r.index for r in load.requests]
    assert len(indices) == len(set(indices)) <= len(load.sent_at)
    assert all(i is not None and i < len(load.sent_at) for i in indices)
    assert all(r.status == 200 for r in load.requests)
