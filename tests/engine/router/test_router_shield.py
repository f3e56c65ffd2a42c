from __future__ import annotations

import pytest
from router_builders import COST, demand, snap

from sloserve_engine.contract.slo import SLO
from sloserve_engine.router.shield import Refusal, RegionShield, Release, Reservation

SLO1S = SLO(ttft_ms=1000)


def region(name: str, *engines: tuple[str, int], at: float = 0.0) -> RegionShield:
    shield = RegionShield(name, COST, lease_s=10.0, remember_s=60.0)
    for engine_id, free in engines:
        shield.observe(snap(engine_id, region=name, free=free, at=at))
    return shield


def test_concurrent_placements_collide_on_kv_and_get_an_alternative() -> None:
    shield = region("r0", ("a", 3_000), ("b", 50_000))
    first = shield.reserve("1", "a", demand(1000, 1000), SLO1S, now=0.1)
    assert isinstance(first, Reservation) and first.expires_at == pytest.approx(10.1)
    # A second router saw the same stale state: together they would overload a.
    second = shield.reserve("2", "a", demand(1000, 1000), SLO1S, now=0.1)
    assert isinstance(second, Refusal)
    assert (second.reason, second.alternative, second.alternative_region) == ("kv", "b", "r0")
    assert shield.state("a").pending.demand_tokens == 2000
    # Once a's snapshot shows the placement, the shield stops counting it twice.
    shield.observe(snap("a", region="r0", free=1_000, reserved=1_000, at=0.2))
    assert shield.state("a").pending.requests == 0


def test_ttft_collision_and_cross_region_alternative() -> None:
    west = region("west", ("a", 90_000))
    east = region("east", ("c", 90_000))
    west.connect(east)
    west.observe(snap("a", region="west", free=90_000, delay=2.0))
    refusal = west.reserve("1", "a", demand(), SLO1S, now=0.0)
    assert isinstance(refusal, Refusal)
    assert (refusal.reason, refusal.alternative, refusal.alternative_region) == (
        "ttft",
        "c",
        "east",
    )
    lonely = region("lonely", ("z", 100))
    refusal = lonely.reserve("2", "z", demand(), SLO1S, now=0.0)
    assert isinstance(refusal, Refusal) and refusal.alternative is None
    assert lonely.reserve("3", "nope", demand(), SLO1S, now=0.0).reason == "unknown-engine"  # type: ignore[union-attr]


def test_release_expiry_and_exactly_once() -> None:
    shield = region("r0", ("a", 90_000))
    assert isinstance(shield.reserve("1", "a", demand(), SLO1S, now=0.0), Reservation)
    assert shield.reserve("1", "a", demand(), SLO1S, now=0.0).reason == "duplicate"  # type: ignore[union-attr]
    assert shield.release("1", Release.FIRST_TOKEN, 0.5) is not None
    assert shield.release("1", Release.COMPLETED, 1.0) is None  # already released
    assert shield.reserve("1", "a", demand(), SLO1S, now=2.0).reason == "duplicate"  # type: ignore[union-attr]
    assert isinstance(shield.reserve("2", "a", demand(), SLO1S, now=2.0), Reservation)
    assert shield.expire(11.9) == []
    assert [r.request_id for r in shield.expire(12.0)] == ["2"]
    assert shield.active == {}
    shield.expire(100.0)  # ids are forgotten after remember_s
    assert isinstance(shield.reserve("1", "a", demand(), SLO1S, now=100.0), Reservation)


def test_forced_grant_skips_collision_not_exactly_once() -> None:
    shield = region("r0", ("a", 100))
    assert isinstance(shield.reserve("1", "a", demand(), SLO1S, now=0.0, force=True), Reservation)
    assert shield.reserve("1", "a", demand(), SLO1S, now=0.0, force=True).reason == "duplicate"  # type: ignore[union-attr]


def test_engine_gone_ends_its_reservations_and_wrong_region_is_refused() -> None:
    shield = region("r0", ("a", 90_000), ("b", 90_000))
    shield.reserve("1", "a", demand(), SLO1S, now=0.0)
    assert [r.request_id for r in shield.forget_engine("a", 0.1)] == ["1"]
    assert shield.engines == ("b",)
    with pytest.raises(ValueError, match="region"):
        shield.observe(snap("x", region="r9"))
    with pytest.raises(ValueError):
        RegionShield("r", COST, lease_s=10.0, remember_s=1.0)
    with pytest.raises(ValueError):
        shield.connect(shield)


def test_older_snapshots_are_ignored() -> None:
    shield = region("r0", ("a", 90_000), at=5.0)
    shield.observe(snap("a", region="r0", free=10, at=4.0))
    assert shield.state("a").snapshot.kv_free_tokens == 90_000
