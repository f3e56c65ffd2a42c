"""Property: every request gets exactly one outcome and is never placed twice.

Two router cores place requests of mixed SLO classes through two connected region
shields while engines publish random KV states and queues that a tight-SLO request may
pass (so refusals, alternatives and sheds happen), requests
reach their first token, finish, fail or are abandoned, and time jumps past
leases. Real objects throughout.
"""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st
from router_builders import COST, snap

from sloserve_engine.contract.slo import SLO
from sloserve_engine.router.admission import Action
from sloserve_engine.router.core import RouterCore, place_through_shields
from sloserve_engine.router.knobs import RouterKnobs
from sloserve_engine.router.shield import Refusal, RegionShield, Release, Reservation
from sloserve_engine.router.snapshot import ArrivalPoint, QueuePoint

ENGINES = {"a": "west", "b": "west", "c": "east", "d": "east"}
CLASSES = (
    SLO(slo_class="interactive", ttft_ms=250),
    SLO(ttft_ms=1000),
    SLO(slo_class="batch", ttft_ms=5000),
)
"""Requests of mixed classes: the queue sheds by class and each class reads its own wait."""

submit = st.tuples(st.just("submit"), st.integers(0, 1), st.integers(1, 6000))
op = st.one_of(
    submit,
    submit,
    st.tuples(st.just("poll"), st.integers(0, 1), st.just(0)),
    st.tuples(st.sampled_from(["first", "finish", "fail", "dup"]), st.integers(0, 50), st.just(0)),
    st.tuples(st.just("advance"), st.integers(1, 40), st.just(0)),
    st.tuples(st.just("publish"), st.integers(0, 3), st.integers(0, 20_000)),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(op, min_size=10, max_size=80),
    st.booleans(),
    st.sampled_from([(1.0, 0.0), (0.2, 0.0), (0.2, 0.05), (0.05, 0.5)]),
    st.booleans(),
)
def test_exactly_one_outcome_never_placed_twice(
    ops: list[tuple[str, int, int]],
    admission: bool,
    margin: tuple[float, float],
    kv_wait_reserved: bool,
) -> None:
    """Also with a fixed tight margin and with an adaptive one (``ttftMarginLateShare``),
    whose first tokens (in time or late, as ``advance`` makes them) move it, and with the KV
    wait priced on promised KV at a measured rate (``kvWaitReserved``; engines that measured
    nothing freed, 0, make that wait infinite)."""
    knobs = RouterKnobs(
        queue_limit=3,
        queue_timeout_s=2.0,
        lease_s=5.0,
        admission=admission,
        ttft_margin=margin[0],
        ttft_margin_late_share=margin[1],
        kv_wait_reserved=kv_wait_reserved,
    )
    shields = {r: RegionShield(r, COST, lease_s=5.0, remember_s=5.0) for r in ("west", "east")}
    shields["west"].connect(shields["east"])
    routers = [RouterCore(knobs, COST, 8192, seed=k) for k in range(2)]
    now = 0.0

    def publish(engine_id: str, free: int) -> None:
        # Queued work that a tight-SLO request may pass (what the engine's order lets it).
        queued = 20_000 - free
        s = snap(
            engine_id,
            region=ENGINES[engine_id],
            free=free,
            drain=2_000.0,
            at=now,
            waiting_prompt=queued,
            delay=queued / 5_000,
            points=(QueuePoint(0.1, 0.0, 0), QueuePoint(1.0, queued / 20_000, queued // 4)),
            # Tight-SLO work arriving that passes looser requests (up to rates >= 1).
            arrivals=(ArrivalPoint(0.25, queued / 16_000, queued / 8.0),),
            # KV promised beyond what is free, freed at a measured rate (0 when free is even).
            reserved=2 * queued,
            freed=float(free % 2 * free),
        )
        shields[s.region].observe(s)
        for r in routers:
            r.observe(s)

    for e in ENGINES:
        publish(e, 8_000)
    owner: dict[str, RouterCore] = {}
    grants: dict[str, list[str]] = {}
    placed: list[str] = []  # granted, not yet ended
    ended: set[str] = set()
    released: dict[str, float] = {}
    waits: list[str] = []
    submitted = 0

    def handle(
        core: RouterCore, rid: str, decision_action: Action, reservation: Reservation | None
    ) -> None:
        if reservation is None:
            waits.append(rid)
        if reservation is not None:
            grants.setdefault(rid, []).append(reservation.engine_id)
            placed.append(rid)
        elif decision_action is Action.REJECT:
            ended.add(rid)

    for kind, x, y in ops:
        if kind == "submit":
            core = routers[x]
            rid = f"q{submitted}"
            submitted += 1
            owner[rid] = core
            d = core.submit(rid, y, CLASSES[y % len(CLASSES)], now)
            d, res = place_through_shields(core, shields, rid, d, now)
            handle(core, rid, d.action, res)
        elif kind == "poll":
            core = routers[x]
            for rid, d in core.poll(now):
                d, res = place_through_shields(core, shields, rid, d, now)
                handle(core, rid, d.action, res)
        elif kind == "advance":
            now += x / 10.0
            for s in shields.values():
                for expired in s.expire(now):  # settled now: remembered for remember_s
                    released[expired.request_id] = now
        elif kind == "publish":
            publish("abcd"[x], y)
        elif placed:
            rid = placed[x % len(placed)]
            region = ENGINES[grants[rid][-1]]
            if kind == "dup":  # a confused host tries to place it again in its region
                remembered = rid in shields[region].active or (
                    rid in released and now - released[rid] < 5.0
                )
                again = shields[region].reserve(
                    rid, grants[rid][-1], owner[rid].placing(rid)[0], SLO(), now
                )
                if remembered:
                    assert isinstance(again, Refusal) and again.reason == "duplicate"
                elif isinstance(again, Reservation):  # its id was forgotten: undo the test's grant
                    shields[region].release(rid, Release.FAILED, now)
                continue
            if shields[region].release(rid, Release.FIRST_TOKEN, now) is not None:
                released[rid] = now
            if kind == "first":
                owner[rid].first_token(rid, now)
                continue
            if kind == "finish":
                owner[rid].finished(rid, 10, True, now)
            else:
                owner[rid].failed(rid, now)
            placed.remove(rid)
            ended.add(rid)

    # Drain: everything placed finishes; held requests time out.
    now += 100.0
    for rid in list(placed):
        owner[rid].finished(rid, 10, False, now)
        ended.add(rid)
    for core in routers:
        for rid, d in core.poll(now):
            assert d.action is Action.REJECT
            ended.add(rid)
    for s in shields.values():
        s.expire(now)
        assert s.active == {}
    refused = sum(s.refusals for s in shields.values())
    event(f"shield refusals: {'some' if refused else 'none'}")
    event(f"held or rejected: {'some' if waits else 'none'}")
    assert all(len(engines) == 1 for engines in grants.values()), grants
    assert len(ended) == submitted
    assert sum(sum(c.outcomes.values()) for c in routers) == submitted
