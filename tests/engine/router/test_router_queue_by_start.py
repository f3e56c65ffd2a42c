"""The engine publishes what a new request waits behind by its place in the engine's order.

Real components: the ``sloserve`` policy's own start deadlines, ``snapshot_from_view``, the
wire form and a router core. A tight-SLO request that the engine lets pass waiting loose-SLO
work is predicted to wait only for what goes before it; a loose-SLO request still waits behind
everything, so under overload the router turns the lower class away first.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from router_builders import COST

from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy import make_policy
from sloserve_engine.policy.views import EngineSnapshot as EngineView
from sloserve_engine.policy.views import RequestView, make_request_view
from sloserve_engine.router.admission import Action, Reason
from sloserve_engine.router.core import RouterCore
from sloserve_engine.router.knobs import RouterKnobs
from sloserve_engine.router.snapshot import (
    MAX_QUEUE_POINTS,
    EngineSnapshot,
    QueuePoint,
    prefill_time_s,
    snapshot_from_json,
    snapshot_from_view,
)

INTERACTIVE = SLO(slo_class="interactive", ttft_ms=250, tbt_ms=50)
BATCH = SLO(slo_class="batch", ttft_ms=5000, tbt_ms=200)
NOW = 100.0
BLOCK = 16


def waiting(rid: str, prompt: int, slo: SLO, arrival: float = NOW - 0.05) -> RequestView:
    return make_request_view(rid, arrival, prompt, 0, 0, 0, slo, 200, 400, 8000, None, 0, 0)


def engine_view(queue: tuple[RequestView, ...], blocks: int = 200_000) -> EngineView:
    """An engine with plenty of KV, nothing running and ``queue`` waiting."""
    return EngineView(NOW, BLOCK, blocks, blocks, 8192, 256, (), queue)


def publish(view: EngineView, policy: str = "sloserve") -> EngineSnapshot:
    order = make_policy(policy, cost_model=COST).start_deadline(view.now)
    return snapshot_from_view(view, "e0", "r0", COST, start_deadline=order)


def start_by(slo: SLO, prompt: int) -> float:
    return slo.ttft_s - COST.prefill_s(prompt)


def test_interactive_behind_batch_work_waits_less_than_batch() -> None:
    queue = tuple(waiting(f"b{i}", 4000, BATCH) for i in range(20))
    s = publish(engine_view(queue))
    everything = prefill_time_s(COST, 20 * 4000, 0, 8192)
    assert s.predicted_queue_delay_s == pytest.approx(everything)
    assert s.queue_ahead(start_by(INTERACTIVE, 500)) == (0.0, 0)  # it goes first
    assert s.queue_ahead(start_by(BATCH, 500)) == (s.predicted_queue_delay_s, 80_000)


def test_waiting_interactive_work_still_goes_first() -> None:
    queue = (*(waiting(f"b{i}", 4000, BATCH) for i in range(5)), waiting("i0", 3000, INTERACTIVE))
    s = publish(engine_view(queue))
    delay, tokens = s.queue_ahead(start_by(INTERACTIVE, 500))
    assert tokens == 3000  # the earlier interactive request, not the batch ones
    assert delay == pytest.approx(prefill_time_s(COST, 3000, 0, 8192))


def test_fcfs_engines_publish_no_order_and_every_request_waits_behind_all() -> None:
    queue = tuple(waiting(f"b{i}", 4000, BATCH) for i in range(3))
    s = publish(engine_view(queue), policy="vllm")
    assert s.queue_by_start == ()
    assert s.queue_ahead(start_by(INTERACTIVE, 500)) == (s.predicted_queue_delay_s, 12_000)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 6000), st.sampled_from([INTERACTIVE, BATCH]), st.floats(0, 4)),
        max_size=60,
    ),
    st.floats(-1.0, 6.0),
)
def test_points_are_bounded_and_never_understate_the_wait(
    reqs: list[tuple[int, SLO, float]], query: float
) -> None:
    queue = tuple(waiting(f"r{i}", p, slo, NOW - age) for i, (p, slo, age) in enumerate(reqs))
    s = publish(engine_view(queue))
    assert len(s.queue_by_start) <= MAX_QUEUE_POINTS
    assert snapshot_from_json(s.to_json()) == s
    # The exact wait: every request the engine's order puts before a new one starting by
    # ``query`` (deadline at or before it).
    order = make_policy("sloserve", cost_model=COST).start_deadline(NOW)
    assert order is not None
    ahead = sum(r.prompt_tokens for r in queue if order(r) - NOW <= query)
    delay, tokens = s.queue_ahead(query)
    assert tokens >= ahead
    assert delay >= prefill_time_s(COST, ahead, 0, 8192) - 1e-12
    assert delay <= s.predicted_queue_delay_s + 1e-12


def test_wire_form_round_trips_and_older_engines_parse() -> None:
    s = publish(engine_view(tuple(waiting(f"b{i}", 1000, BATCH) for i in range(3))))
    doc = s.to_json()
    assert doc["queueByStart"] == [list(p) for p in s.queue_by_start]
    assert snapshot_from_json(doc) == s
    old = {k: v for k, v in doc.items() if k != "queueByStart"}  # an engine before this field
    assert snapshot_from_json(old).queue_by_start == ()
    for bad in ([[1.0, 2.0]], [[1.0, -2.0, 3]], [[1.0, 2.0, 3.5]], "x", [[0.0, 0.0, 0]] * 17):
        with pytest.raises(ValueError, match="queueByStart"):
            snapshot_from_json({**doc, "queueByStart": bad})
    with pytest.raises(ValueError, match="ascending"):
        dataclasses.replace(s, queue_by_start=(QueuePoint(2.0, 0, 0), QueuePoint(1.0, 0, 0)))


def test_under_overload_the_router_turns_the_lower_class_away_first() -> None:
    # Batch work that arrived over the last second; more than 5 s of prefill queued.
    tokens = 8000
    n = 1
    while prefill_time_s(COST, n * tokens, 0, 8192) < 6.0:
        n += 1
    queue = tuple(waiting(f"b{i}", tokens, BATCH, NOW - i / n) for i in range(n))
    s = publish(engine_view(queue))
    core = RouterCore(RouterKnobs(shield=False), COST, 32_768)
    core.observe(s)
    placed = core.submit("i", 500, INTERACTIVE, NOW)
    turned_away = core.submit("b", 500, BATCH, NOW)
    assert placed.action is Action.PLACE
    assert placed.predicted_ttft_s is not None and placed.predicted_ttft_s < INTERACTIVE.ttft_s
    assert (turned_away.action, turned_away.reason) == (Action.REJECT, Reason.SLO_INFEASIBLE)
    # An engine that publishes no order (an older version): the class-blind total, and the
    # interactive request is turned away too.
    blind = RouterCore(RouterKnobs(shield=False), COST, 32_768)
    blind.observe(dataclasses.replace(s, queue_by_start=()))
    assert blind.submit("i", 500, INTERACTIVE, NOW).reason is Reason.SLO_INFEASIBLE
