from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from router_builders import COST, snap

from sloserve_engine.contract.slo import SLO
from sloserve_engine.router.admission import Action, Reason
from sloserve_engine.router.core import RouterCore
from sloserve_engine.router.knobs import RouterKnobs
from sloserve_engine.router.margin import MARGIN_STEP, next_margin

SLO1S = SLO(ttft_ms=1000)


def test_late_moves_down_in_time_moves_up_by_the_share() -> None:
    assert next_margin(0.5, True, 0.1, 0.02) == pytest.approx(max(0.5 - MARGIN_STEP * 0.98, 0.1))
    assert next_margin(0.5, False, 0.1, 0.02) == pytest.approx(min(0.5 + MARGIN_STEP * 0.02, 1))


def test_it_stands_still_when_the_late_share_is_the_target() -> None:
    m, share = 0.9, 0.25
    for late in [True, False, False, False] * 5:  # exactly a quarter late
        m = next_margin(m, late, 0.01, share)
    assert m == pytest.approx(0.9)


@given(st.floats(0.0, 1.0), st.floats(0.01, 1.0), st.floats(0.001, 0.5), st.lists(st.booleans()))
def test_the_margin_stays_between_the_floor_and_one(
    start: float, floor: float, share: float, lates: list[bool]
) -> None:
    m = min(max(start, floor), 1.0)
    for late in lates:
        m = next_margin(m, late, floor, share)
        assert floor <= m <= 1.0


def _served(c: RouterCore, rid: str, prompt: int, arrival: float, ttft_s: float) -> None:
    d = c.submit(rid, prompt, SLO1S, now=arrival)
    assert d.action is Action.PLACE and d.engine_id is not None
    c.granted(rid, d.engine_id, arrival)
    c.first_token(rid, arrival + ttft_s)
    c.finished(rid, 10, ttft_s <= 1.0, arrival + ttft_s + 0.1)


def test_late_first_tokens_tighten_the_router_and_in_time_ones_loosen_it() -> None:
    c = RouterCore(RouterKnobs(ttft_margin=0.2, ttft_margin_late_share=0.1), COST, 8192)
    c.observe(snap("a", delay=0.5))
    assert c.margin.margin == 1.0  # starts loose: a queue of 0.5 s is taken
    _served(c, "first", 100, 0.0, 0.6)
    c.observe(snap("a", delay=0.0, at=1.0))
    for i in range(20):
        _served(c, f"late{i}", 100, 1.0 + i, 1.5)  # the engine was idle, yet they came late
    assert c.margin.margin == 0.2  # at the floor: the same queue is now refused
    c.observe(snap("a", delay=0.5, at=30.0))
    d = c.submit("x", 100, SLO1S, now=30.0)
    assert (d.action, d.reason) == (Action.REJECT, Reason.SLO_INFEASIBLE)
    c.observe(snap("a", delay=0.0, at=30.5))
    for i in range(40):
        _served(c, f"ok{i}", 100, 31.0 + i, 0.1)
    assert c.margin.margin == pytest.approx(min(0.2 + 40 * MARGIN_STEP * 0.1, 1.0))


def test_a_fixed_margin_is_left_alone_and_knob_changes_apply_live() -> None:
    c = RouterCore(RouterKnobs(ttft_margin=0.3), COST, 8192)
    c.observe(snap("a"))
    _served(c, "r", 100, 0.0, 2.0)
    assert c.margin.margin == 0.3
    c.set_knobs(RouterKnobs(ttft_margin=0.3, ttft_margin_late_share=0.05))
    assert c.margin.margin == 0.3  # adapts from where it stands
    c.set_knobs(RouterKnobs(ttft_margin=0.6, ttft_margin_late_share=0.05))
    assert c.margin.margin == 0.6  # a higher floor lifts it
    c.set_knobs(RouterKnobs(ttft_margin=0.4))
    assert c.margin.margin == 0.4  # off: the knob itself


def test_a_placement_is_late_once_its_target_passes_without_a_first_token() -> None:
    c = RouterCore(RouterKnobs(ttft_margin=0.2, ttft_margin_late_share=0.1), COST, 8192)
    c.observe(snap("a"))
    d = c.submit("slow", 100, SLO1S, now=0.0)
    assert d.engine_id == "a"
    c.granted("slow", "a", 0.0)
    c.submit("next", 100, SLO1S, now=0.9)
    assert c.margin.margin == 1.0  # not due yet
    c.submit("later", 100, SLO1S, now=1.2)
    after = max(1.0 - MARGIN_STEP * 0.9, 0.2)
    assert c.margin.margin == pytest.approx(after)  # judged late without waiting for the token
    c.first_token("slow", 6.0)  # the token the engine pushed back: judged once only
    assert c.margin.margin == pytest.approx(after)


def test_a_failed_placement_says_nothing_about_the_margin() -> None:
    c = RouterCore(RouterKnobs(ttft_margin=0.2, ttft_margin_late_share=0.1), COST, 8192)
    c.observe(snap("a"))
    c.submit("r", 100, SLO1S, now=0.0)
    c.granted("r", "a", 0.0)
    c.failed("r", 0.5)
    c.poll(3.0)
    assert c.margin.margin == 1.0


def test_a_non_streamed_placement_teaches_nothing() -> None:
    """An HTTP router never sees a non-streamed answer's first token."""
    c = RouterCore(RouterKnobs(ttft_margin=0.2, ttft_margin_late_share=0.1), COST, 8192)
    c.observe(snap("a"))
    c.submit("r", 100, SLO1S, now=0.0)
    c.granted("r", "a", 0.0, streamed=False)
    c.poll(3.0)
    assert c.margin.margin == 1.0
