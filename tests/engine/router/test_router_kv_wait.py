"""The wait for KV counts what the engine promised, at the KV it measured freed.

Real components: the engine's ``FreedMeter`` over successive views, ``snapshot_from_view``,
the wire form, ``predict_ttft`` and a router core. The predicted drain (held KV over predicted
remaining steps, summed) overstates what an engine frees; an engine with little free KV and
much promised is predicted to make a new request wait longer with ``kvWaitReserved``, and not
at all when its KV is free. Under overload with mixed classes the router turns batch away and
places interactive.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from router_builders import COST, demand, snap
from test_router_queue_by_start import BATCH, BLOCK, INTERACTIVE, NOW, publish, waiting

from sloserve_engine.policy import make_policy
from sloserve_engine.policy.views import EngineSnapshot as EngineView
from sloserve_engine.policy.views import RequestView, make_request_view
from sloserve_engine.router.admission import Action, Reason
from sloserve_engine.router.core import RouterCore
from sloserve_engine.router.drain import DRAIN_WINDOW_S, FreedMeter
from sloserve_engine.router.knobs import RouterKnobs
from sloserve_engine.router.placement import EngineState, kv_wait, predict_ttft
from sloserve_engine.router.snapshot import (
    QueuePoint,
    prefill_time_s,
    reserved_kv_wait_s,
    snapshot_from_json,
    snapshot_from_view,
)


def running(rid: str, blocks: int, out: int = 10, predicted: int = 11) -> RequestView:
    """A decoding request holding ``blocks`` blocks, ``predicted - out`` tokens from its end."""
    prompt = blocks * BLOCK - out
    return make_request_view(
        rid, NOW - 5, prompt, out, prompt + out, blocks, BATCH, predicted, 2000, 8000, NOW - 4, 0, 0
    )


def view(
    at: float, run: tuple[RequestView, ...], queue: tuple[RequestView, ...] = ()
) -> EngineView:
    return EngineView(
        at, BLOCK, 6000, 6000 - sum(r.blocks_held for r in run), 8192, 256, run, queue
    )


def test_the_meter_counts_kv_that_left_the_running_set_over_its_window() -> None:
    meter = FreedMeter()
    a, b = running("a", 100), running("b", 50)
    assert meter.observe(view(NOW, (a, b))) == 0.0
    # "a" finished, "b" was preempted (back to waiting): both freed their blocks.
    assert meter.observe(view(NOW + 0.5, (), (b,))) == 150 * BLOCK / DRAIN_WINDOW_S
    assert meter.observe(view(NOW + 1.0, ())) == 150 * BLOCK / DRAIN_WINDOW_S
    assert meter.observe(view(NOW + 0.5 + DRAIN_WINDOW_S, ())) == 0.0  # left the window


def test_the_engine_publishes_the_measured_rate_and_the_wire_keeps_it_optional() -> None:
    meter = FreedMeter()
    order = make_policy("sloserve", cost_model=COST).start_deadline(NOW)
    snapshot_from_view(view(NOW, (running("a", 100),)), "e0", "r0", COST, None, order, meter)
    s = snapshot_from_view(view(NOW + 0.1, ()), "e0", "r0", COST, None, order, meter)
    assert s.kv_freed_tokens_per_s == 100 * BLOCK / DRAIN_WINDOW_S
    assert snapshot_from_json(s.to_json()) == s
    older = publish(view(NOW, ()))  # an engine without a meter: the field is left out
    assert older.kv_freed_tokens_per_s is None and "kvFreedTokensPerS" not in older.to_json()
    assert snapshot_from_json(older.to_json()) == older
    for bad in (-1.0, True, "fast"):
        with pytest.raises(ValueError, match="kvFreedTokensPerS"):
            snapshot_from_json({**s.to_json(), "kvFreedTokensPerS": bad})


def test_the_predicted_drain_overstates_what_finishing_requests_free() -> None:
    # Ten requests one step from their predicted end, 4,000 tokens each: the predicted drain
    # prices them as a sustained rate; what they free is 40,000 tokens once.
    run = tuple(running(f"r{k}", 250) for k in range(10))
    s = publish(view(NOW, run))
    assert s.kv_drain_tokens_per_s * 2.0 > 10 * 40_000


def test_reserved_kv_wait_is_zero_when_the_prompt_fits_and_grows_with_the_promises() -> None:
    assert reserved_kv_wait_s(50_000, 10_000, 2_000, 25_000.0) == 0.0
    assert reserved_kv_wait_s(5_000, 70_000, 2_000, 25_000.0) == pytest.approx(67_000 / 25_000)
    assert reserved_kv_wait_s(5_000, 70_000, 2_000, 0.0) == math.inf
    assert reserved_kv_wait_s(5_000, 0, 5_000, 0.0) == 0.0


def late_batch_engine(
    free: int, freed: float | None = 25_000.0, reserved: int = 70_000
) -> EngineState:
    """The state behind the late batch requests (late_batch.txt): little free KV, much
    promised, a predicted drain that frees the cache in under a second."""
    return EngineState(
        snap(
            free=free,
            reserved=reserved,
            waiting=20,
            waiting_prompt=20_000,
            delay=2.0,
            drain=180_000.0,
            at=NOW,
            points=(QueuePoint(1.0, 0.0, 0),),  # interactive goes before the queue
            freed=freed,
        )
    )


def test_little_free_and_much_promised_kv_predicts_a_longer_wait_than_the_old_estimate() -> None:
    state, d = late_batch_engine(5_000), demand(2_000, 400)
    start_by = BATCH.ttft_s - COST.prefill_s(2_000)
    old = predict_ttft(state, d, COST, start_by, BATCH.ttft_s)
    new = predict_ttft(state, d, COST, start_by, BATCH.ttft_s, reserved=True)
    own = prefill_time_s(COST, 2_000, 0, 8192)
    # Old: the queue ahead (2 s) outlasts the prompts ahead against free KV at the predicted
    # drain (17,000 / 180,000 s). New: every promise at the measured rate, then its prefill.
    assert old == pytest.approx(2.0 + own)
    assert new == pytest.approx(67_000 / 25_000 + own) and new > old
    # Behind the whole queue it counts every promise: (70,000 + 2,000 - 5,000) / 25,000 s.
    assert kv_wait(state, d, 20_000, reserved=True) == (pytest.approx(67_000 / 25_000), 25_000.0)
    # At the front of the queue none of the promises are ahead of it.
    assert kv_wait(state, d, 0, reserved=True) == (0.0, 25_000.0)


def test_no_kv_wait_when_kv_is_free_and_the_old_wait_without_a_measured_rate() -> None:
    d = demand(2_000, 400)
    free = late_batch_engine(97_488)
    assert free.snapshot.kv_headroom_tokens > 0
    assert kv_wait(free, d, 20_000, reserved=True)[0] == 0.0
    older = late_batch_engine(5_000, freed=None)  # an engine that predates the field
    assert kv_wait(older, d, 20_000, reserved=True) == kv_wait(older, d, 20_000, reserved=False)


def test_under_overload_batch_is_turned_away_and_interactive_placed() -> None:
    state = late_batch_engine(5_000, reserved=140_000)  # 5.5 s of promises at 25,000/s
    core = RouterCore(RouterKnobs(shield=False, kv_wait_reserved=True), COST, 32_768)
    core.observe(state.snapshot)
    placed = core.submit("i", 500, INTERACTIVE, NOW)
    turned_away = core.submit("b", 2_000, BATCH, NOW)
    assert placed.action is Action.PLACE
    assert (turned_away.action, turned_away.reason) == (Action.REJECT, Reason.SLO_INFEASIBLE)


def test_the_knob_is_on_by_default_and_changes_live() -> None:
    assert RouterKnobs().kv_wait_reserved is True
    assert RouterKnobs.model_validate({"kvWaitReserved": False}).kv_wait_reserved is False
    state = late_batch_engine(5_000, reserved=140_000)
    core = RouterCore(RouterKnobs(shield=False), COST, 32_768)
    core.observe(state.snapshot)
    assert core.submit("b0", 2_000, BATCH, NOW).action is Action.REJECT  # promised KV counts
    core.set_knobs(RouterKnobs(shield=False, kv_wait_reserved=False))
    core.observe(dataclasses.replace(state.snapshot, observed_at=NOW + 0.001))
    assert core.submit("b1", 2_000, BATCH, NOW + 0.001).action is Action.PLACE  # the old estimate


def test_the_queue_ahead_decides_which_promises_count() -> None:
    # Batch work waiting: an interactive request goes first, so the promises are behind it.
    queue = tuple(waiting(f"b{k}", 4000, BATCH) for k in range(5))
    s = publish(EngineView(NOW, BLOCK, 6000, 100, 8192, 256, (), queue))
    s = dataclasses.replace(s, kv_freed_tokens_per_s=10_000.0)
    state, d = EngineState(s), demand(500, 100)
    inter = predict_ttft(state, d, COST, INTERACTIVE.ttft_s, INTERACTIVE.ttft_s, reserved=True)
    batch = predict_ttft(state, d, COST, BATCH.ttft_s, BATCH.ttft_s, reserved=True)
    assert inter < INTERACTIVE.ttft_s < batch


def test_alternatives_are_judged_with_the_routers_knobs() -> None:
    """The first choice and a shield-refusal's alternative judge the same request: the
    router's margin and ``kvWaitReserved``, not the shields' defaults."""
    core = RouterCore(RouterKnobs(shield=True, ttft_margin=0.5), COST, 32_768)
    core.observe(late_batch_engine(97_488).snapshot)
    assert core.submit("i", 500, INTERACTIVE, NOW).action is Action.PLACE
    request = core.placement_request("i", NOW + 0.25)
    assert (request.ttft_margin, request.kv_wait_reserved, request.waited_s) == (0.5, True, 0.25)
    core.set_knobs(RouterKnobs(shield=True, ttft_margin=0.5, kv_wait_reserved=False))
    assert core.placement_request("i", NOW + 0.25).kv_wait_reserved is False
