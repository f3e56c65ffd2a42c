"""A looser request also waits for the tighter work that arrives while it waits and passes it.

Real components: the ``sloserve`` policy's order, ``snapshot_from_view`` (the engine's recent
arrival work by TTFT target), the wire form, ``predict_ttft`` and a router core. A batch
request behind an interactive arrival stream is predicted to wait longer than without it; a
single-class workload reads the wait unchanged; under overload with mixed classes the router
turns batch away before interactive.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from router_builders import COST, demand, snap
from test_router_queue_by_start import BATCH, INTERACTIVE, NOW, engine_view, publish, waiting

from sloserve_engine.contract.slo import SLO
from sloserve_engine.router.admission import Action, Reason
from sloserve_engine.router.core import RouterCore
from sloserve_engine.router.knobs import RouterKnobs
from sloserve_engine.router.placement import EngineState, predict_ttft
from sloserve_engine.router.snapshot import (
    ARRIVAL_WINDOW_S,
    MAX_QUEUE_POINTS,
    ArrivalPoint,
    QueuePoint,
    prefill_time_s,
    snapshot_from_json,
    wait_with_passing,
)


def interactive_stream(n: int, prompt: int = 2000) -> tuple:  # type: ignore[type-arg]
    """``n`` interactive requests that arrived over the last window (all still waiting)."""
    return tuple(
        waiting(f"i{k}", prompt, INTERACTIVE, NOW - ARRIVAL_WINDOW_S * k / n) for k in range(n)
    )


def test_the_engine_publishes_its_recent_arrival_work_by_ttft_target() -> None:
    old = waiting("old", 4000, BATCH, NOW - ARRIVAL_WINDOW_S - 1.0)  # outside the window
    s = publish(engine_view((old, waiting("b", 1000, BATCH), *interactive_stream(4))))
    assert [a.ttft_s for a in s.arrival_work_by_ttft] == [INTERACTIVE.ttft_s, BATCH.ttft_s]
    inter, batch = s.arrival_work_by_ttft
    assert inter.work_per_s == pytest.approx(prefill_time_s(COST, 8000, 0, 8192) / ARRIVAL_WINDOW_S)
    assert batch.work_per_s == pytest.approx(prefill_time_s(COST, 1000, 0, 8192) / ARRIVAL_WINDOW_S)
    assert inter.kv_tokens_per_s == pytest.approx(4 * (2000 + 400) / ARRIVAL_WINDOW_S)
    # An FCFS engine lets nothing pass: it publishes no arrival work.
    assert publish(engine_view(interactive_stream(4)), policy="vllm").arrival_work_by_ttft == ()


def test_a_batch_request_behind_an_interactive_stream_waits_longer() -> None:
    queue = (*(waiting(f"b{k}", 8000, BATCH) for k in range(8)), *interactive_stream(10, 1000))
    s = publish(engine_view(queue))
    without = dataclasses.replace(s, arrival_work_by_ttft=())
    start_by = BATCH.ttft_s - COST.prefill_s(500)
    d = demand(500)
    passed = predict_ttft(EngineState(s), d, COST, start_by, BATCH.ttft_s)
    alone = predict_ttft(EngineState(without), d, COST, start_by, BATCH.ttft_s)
    r = s.arrival_work_by_ttft[0].work_per_s
    assert 0 < r < 1
    ahead = s.queue_ahead(start_by)[0]
    assert passed == pytest.approx(alone + ahead * r / (1 - r))  # W = Q / (1 - r)
    assert passed > alone
    # The interactive request is not passed by its own class: its prediction is unchanged.
    i_start = INTERACTIVE.ttft_s - COST.prefill_s(500)
    assert predict_ttft(EngineState(s), d, COST, i_start, INTERACTIVE.ttft_s) == predict_ttft(
        EngineState(without), d, COST, i_start, INTERACTIVE.ttft_s
    )


def test_single_class_reads_the_wait_unchanged() -> None:
    one = SLO(ttft_ms=1000)
    queue = tuple(waiting(f"r{k}", 3000, one, NOW - k / 10) for k in range(30))
    s = publish(engine_view(queue))
    assert [a.ttft_s for a in s.arrival_work_by_ttft] == [one.ttft_s]
    for start_by in (0.0, 0.5, 0.99, 5.0):
        q = s.queue_ahead(start_by)[0]
        assert (
            wait_with_passing(
                q, start_by, one.ttft_s, [(a[0], a[1]) for a in s.arrival_work_by_ttft]
            )
            == q
        )


def test_the_wait_stays_finite_when_passing_work_saturates_the_engine() -> None:
    # r >= 1: the request waits until its start deadline's window for passers closes.
    assert wait_with_passing(1.0, 5.0, 5.0, [(0.25, 1.5)]) == pytest.approx(1.0 + 1.5 * 4.75)
    assert wait_with_passing(1.0, 5.0, 5.0, [(0.25, 0.5)]) == pytest.approx(2.0)
    # Arrivals after its own start deadline do not pass it.
    assert wait_with_passing(1.0, 0.2, 5.0, [(0.25, 0.9)]) == 1.0


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0, 20),
    st.floats(0, 10),
    st.floats(0.01, 10),
    st.lists(st.tuples(st.floats(0.01, 10), st.floats(0, 3)), max_size=6),
)
def test_the_wait_solves_the_passing_equation(
    queued: float, start_by: float, ttft: float, rates: list[tuple[float, float]]
) -> None:
    w = wait_with_passing(queued, start_by, ttft, rates)
    assert math.isfinite(w) and w >= queued
    passers = [(start_by - t, r) for t, r in rates if t < ttft and t < start_by]
    rhs = queued + sum(r * min(w, win) for win, r in passers)
    assert w == pytest.approx(rhs, rel=1e-9, abs=1e-9)
    # The smallest solution: nothing below it solves the equation.
    below = w * (1 - 1e-6) - 1e-9
    if below > queued:
        assert queued + sum(r * min(below, win) for win, r in passers) > below


def test_wire_form_round_trips_bounds_and_older_engines_parse() -> None:
    many = tuple(waiting(f"r{k}", 100, SLO(ttft_ms=100 + k)) for k in range(MAX_QUEUE_POINTS + 4))
    s = publish(engine_view(many))
    assert len(s.arrival_work_by_ttft) == MAX_QUEUE_POINTS
    # The loosest targets fold into the last point kept: no work is lost.
    assert s.arrival_work_by_ttft[-1].kv_tokens_per_s == pytest.approx(5 * 500 / ARRIVAL_WINDOW_S)
    doc = s.to_json()
    assert doc["arrivalWorkByTtft"] == [list(a) for a in s.arrival_work_by_ttft]
    assert snapshot_from_json(doc) == s
    old = {k: v for k, v in doc.items() if k != "arrivalWorkByTtft"}
    assert snapshot_from_json(old).arrival_work_by_ttft == ()
    for bad in ([[0.25, 1.0]], [[0.25, -1.0, 0.0]], "x", [[0.25, True, 0.0]]):
        with pytest.raises(ValueError, match="arrivalWorkByTtft"):
            snapshot_from_json({**doc, "arrivalWorkByTtft": bad})
    with pytest.raises(ValueError, match="ascending"):
        dataclasses.replace(
            s, arrival_work_by_ttft=(ArrivalPoint(1.0, 0, 0), ArrivalPoint(0.5, 0, 0))
        )


def test_under_overload_batch_is_turned_away_before_interactive() -> None:
    # 3 s of batch work queued: a batch request alone would start in time (5 s target), but
    # interactive work arrives at 0.6 s per s and passes it, so it would wait ~7.5 s.
    s = snap(
        delay=3.0,
        waiting_prompt=100_000,
        free=97_488,
        drain=20_000.0,
        at=NOW,
        points=(QueuePoint(1.0, 0.0, 0),),  # interactive goes before the batch work
        arrivals=(ArrivalPoint(INTERACTIVE.ttft_s, 0.6, 1000.0),),
    )
    core = RouterCore(RouterKnobs(shield=False), COST, 32_768)
    core.observe(s)
    placed = core.submit("i", 500, INTERACTIVE, NOW)
    turned_away = core.submit("b", 500, BATCH, NOW)
    assert placed.action is Action.PLACE
    assert (turned_away.action, turned_away.reason) == (Action.REJECT, Reason.SLO_INFEASIBLE)
    # Without the arrival stream the batch request would have been placed.
    blind = RouterCore(RouterKnobs(shield=False), COST, 32_768)
    blind.observe(dataclasses.replace(s, arrival_work_by_ttft=()))
    assert blind.submit("b", 500, BATCH, NOW).action is Action.PLACE
