from __future__ import annotations

import pytest
from router_builders import COST, snap

from sloserve_engine.contract.slo import SLO
from sloserve_engine.router.admission import Action, Reason
from sloserve_engine.router.core import RouterCore, place_through_shields
from sloserve_engine.router.demand import KvDemand
from sloserve_engine.router.knobs import RouterKnobs
from sloserve_engine.router.shield import RegionShield, Reservation

SLO1S = SLO(ttft_ms=1000)


def core(**knobs: object) -> RouterCore:
    return RouterCore(RouterKnobs.model_validate(knobs), COST, 8192)


def test_own_placements_count_until_a_snapshot_shows_them() -> None:
    c = core(placement="dynamo")
    c.observe(snap("a", free=60_000, at=0.0))
    c.observe(snap("b", free=59_000, at=0.0))
    first = c.submit("1", 3000, SLO1S, now=0.1)
    assert first.engine_id == "a"
    c.granted("1", "a", 0.1)
    assert c.submit("2", 3000, SLO1S, now=0.1).engine_id == "b"  # a now carries request 1
    c.granted("2", "b", 0.1)
    c.observe(snap("a", free=55_000, at=0.2))
    assert next(s for s in c.states() if s.engine_id == "a").pending.requests == 0
    with pytest.raises(ValueError, match="placed"):
        c.granted("2", "b", 0.2)


def test_hold_then_place_on_fresher_state_or_time_out() -> None:
    c = core(queue_timeout_s=0.5)
    c.observe(snap("a", free=1_000, drain=3_000.0))  # TTFT fine, KV does not fit yet
    d = c.submit("1", 3000, SLO1S, now=0.0)
    assert (d.action, d.reason) == (Action.HOLD, Reason.KV_WAIT)
    assert c.held() == 1 and c.poll(0.1) == []
    c.observe(snap("a", free=90_000, at=0.2))
    [(rid, placed)] = c.poll(0.2)
    assert (rid, placed.action, placed.engine_id) == ("1", Action.PLACE, "a")
    c.granted("1", "a", 0.2)
    c.observe(snap("a", free=1_000, drain=3_000.0, at=0.3))
    assert c.submit("2", 3000, SLO1S, now=0.3).action is Action.HOLD
    [(rid, timed_out)] = c.poll(0.8)
    assert (rid, timed_out.reason) == ("2", Reason.TIMEOUT)
    assert c.outcomes == {"rejected:timeout": 1}


def test_reject_at_once_when_no_engine_can_meet_the_ttft() -> None:
    c = core()
    c.observe(snap("a", delay=4.0))
    d = c.submit("1", 100, SLO1S, now=0.0)
    assert (d.action, d.reason, d.retry_after_s) == (Action.REJECT, Reason.SLO_INFEASIBLE, 4.0)
    off = core(admission=False)
    off.observe(snap("a", delay=4.0))
    assert off.submit("1", 100, SLO1S, now=0.0).engine_id == "a"
    assert core().submit("x", 100, SLO1S, now=0.0).reason is Reason.NO_REPLICA


def test_lower_classes_are_shed_first() -> None:
    c = core(queue_limit=1)
    c.observe(snap("a", free=1_000, drain=3_000.0))
    assert c.submit("b", 3000, SLO(slo_class="batch"), now=0.0).action is Action.HOLD
    assert c.submit("i", 3000, SLO(slo_class="interactive"), now=0.0).action is Action.HOLD
    assert c.outcomes == {"rejected:shed": 1}
    assert c.take_shed() == ["b"] and c.take_shed() == []
    late = c.submit("s", 3000, SLO(slo_class="standard"), now=0.0)
    assert late.reason is Reason.QUEUE_FULL


def test_shield_refusal_is_followed_to_its_alternative_and_learned_from() -> None:
    shield = RegionShield("r0", COST)
    c = core(placement="slo-greedy")
    for s in (snap("a", free=10_000, delay=0.2), snap("b", free=90_000)):
        shield.observe(s)
        c.observe(s)
    # Another router's placement on b that this router has not seen yet.
    assert isinstance(
        shield.reserve("x", "b", KvDemand(7000, 80_000, 500), SLO1S, 0.05), Reservation
    )
    d = c.submit("1", 3000, SLO1S, now=0.1)
    assert d.engine_id == "b"
    d, res = place_through_shields(c, {"r0": shield}, "1", d, 0.1)
    assert res is not None and res.engine_id == "a"
    assert c.interventions("1") == 1
    c.finished("1", 100, True, 1.0)
    assert c.outcomes == {"finished": 1}
    with pytest.raises(ValueError, match="outcome"):
        c.failed("1", 1.0)


def test_refusal_without_alternative_holds() -> None:
    shield = RegionShield("r0", COST)
    c = core()
    s = snap("b", free=90_000)
    shield.observe(s)
    c.observe(s)
    shield.reserve("x", "b", KvDemand(7000, 80_000, 500), SLO1S, 0.05)
    d, res = place_through_shields(c, {"r0": shield}, "1", c.submit("1", 3000, SLO1S, now=0.1), 0.1)
    assert res is None and (d.action, d.reason) == (Action.HOLD, Reason.KV_WAIT)


def test_set_knobs_live() -> None:
    c = core()
    c.set_knobs(RouterKnobs(placement="p2c", queue_limit=7))
    assert c.placement.name == "p2c" and c.queue.limit == 7


def test_at_zero_engines_requests_wait_for_the_first_one_then_get_503() -> None:
    """Scale to zero: held, not 503; placed on the first engine whatever its predicted TTFT
    (the wait already spent the budget); past ``coldStartTimeoutS`` 503 (reason cold_start)."""
    c = core(cold_start_timeout_s=30.0, queue_timeout_s=0.5)
    c.hold_without_engines = True  # as the HTTP router sets it
    first = c.submit("1", 100, SLO1S, now=0.0)
    assert (first.action, first.reason) == (Action.HOLD, Reason.COLD_START)
    c.submit("2", 100, SLO1S, now=20.0)
    assert c.poll(10.0) == []  # far past queueTimeoutS: cold holds use coldStartTimeoutS
    assert c.poll(12.0) == []  # the first engine is discovered but not polled yet: held
    c.observe(snap("a", delay=4.0, at=12.5))  # would fail admission for a fresh request
    placed = c.poll(13.0)
    assert [(r, d.action, d.engine_id) for r, d in placed] == [
        ("1", Action.PLACE, "a"),
        ("2", Action.PLACE, "a"),
    ]
    c.forget("a")  # engines gone again (scaled to zero, or all restarting)
    assert c.submit("3", 100, SLO1S, now=14.0).reason is Reason.COLD_START
    assert c.poll(43.9) == []
    [(rid, gone)] = c.poll(44.0)
    assert (rid, gone.action, gone.reason) == ("3", Action.REJECT, Reason.COLD_START)
    assert c.outcomes == {"rejected:cold_start": 1}


def test_a_request_that_waited_for_an_engine_is_granted_by_its_shield() -> None:
    """The first engine after a cold start takes the held requests: its shield would refuse
    them on TTFT (the wait spent the budget), so they are forced (the router's 429 bug)."""
    shield = RegionShield("r0", COST)
    c = core()
    c.hold_without_engines = True
    assert c.submit("cold", 100, SLO1S, now=0.0).reason is Reason.COLD_START
    s = snap("a", delay=4.0, at=9.0)
    shield.observe(s)
    c.observe(s)
    [(rid, d)] = c.poll(10.0)
    assert c.forced("cold")
    d, res = place_through_shields(c, {"r0": shield}, rid, d, 10.0)
    assert res is not None and res.engine_id == "a"
    assert c.submit("fresh", 100, SLO1S, now=10.0).reason is Reason.SLO_INFEASIBLE
    assert c.outcomes == {"rejected:slo_infeasible": 1}


def test_a_host_whose_engines_never_leave_gets_503_at_once_without_engines() -> None:
    c = core()  # the cluster simulator: hold_without_engines stays off
    assert c.submit("x", 100, SLO1S, now=0.0).reason is Reason.NO_REPLICA


async def test_a_name_without_addresses_is_no_engine_not_a_failure() -> None:
    """A headless Service with no ready pod has no DNS records: that is zero engines (held for
    a cold start), not a resolver failure (which keeps the engines the router knows)."""
    from sloserve_engine.router.engines import dns_discovery

    discover = dns_discovery("no-such-service.invalid:8000")  # RFC 6761: never resolves
    assert await discover() == []


async def test_engines_file_is_read_again_at_every_resolution(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sloserve_engine.router.engines import file_discovery

    path = tmp_path / "engines"
    discover = file_discovery(path)
    assert await discover() == []  # no file yet: no engine (held for a cold start)
    path.write_text("127.0.0.1:9001\n\n[::1]:9002\n")
    assert await discover() == ["http://127.0.0.1:9001", "http://[::1]:9002"]
    path.write_text("nonsense\n")
    with pytest.raises(OSError, match="--engines-file"):
        await discover()


def test_queue_timeout_counts_from_the_first_hold_across_shield_refusals() -> None:
    from sloserve_engine.router.shield import Refusal

    c = core(queue_timeout_s=0.5)
    c.observe(snap("a"))
    assert c.submit("1", 1000, SLO1S, now=0.0).action is Action.PLACE
    assert c.refused(Refusal("1", "a", "kv"), now=0.0).action is Action.HOLD
    for t in (0.1, 0.2, 0.3):  # placed again from the queue, refused again by the shield
        [(_, again)] = c.poll(t)
        assert again.action is Action.PLACE
        assert c.refused(Refusal("1", "a", "kv"), now=t).action is Action.HOLD
    [(rid, timed_out)] = c.poll(0.5)
    assert (rid, timed_out.reason) == ("1", Reason.TIMEOUT)


def test_drain_rejects_every_held_request_once() -> None:
    c = core()
    c.hold_without_engines = True
    for rid in ("a", "b"):
        assert c.submit(rid, 100, SLO1S, now=0.0).action is Action.HOLD
    drained = c.drain()
    assert [(rid, d.action, d.reason) for rid, d in drained] == [
        ("a", Action.REJECT, Reason.SHUTDOWN),
        ("b", Action.REJECT, Reason.SHUTDOWN),
    ]
    assert c.held() == 0 and c.drain() == []
    assert c.outcomes == {"rejected:shutdown": 2}
