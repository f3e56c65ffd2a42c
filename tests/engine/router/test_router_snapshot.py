from __future__ import annotations

import math

import pytest
from router_builders import COST, snap

from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy.views import EngineSnapshot as EngineView
from sloserve_engine.policy.views import make_request_view
from sloserve_engine.router.snapshot import (
    EngineSnapshot,
    kv_wait_s,
    prefill_time_s,
    snapshot_from_json,
    snapshot_from_view,
)


def view(rid: str, prompt: int, out: int, computed: int, blocks: int, pred: int, bound: int):
    return make_request_view(
        rid, 0.0, prompt, out, computed, blocks, SLO(), pred, bound, 8000, None, 0, 0
    )


def test_json_round_trip_and_field_named_errors() -> None:
    s = snap(free=5000, reserved=1000, waiting=2, at=12.5)
    doc = s.to_json()
    assert doc["kvFreeTokens"] == 5000 and doc["observedAt"] == 12.5
    assert snapshot_from_json(doc) == s
    with pytest.raises(ValueError, match="kvTotalTokens"):
        snapshot_from_json({k: v for k, v in doc.items() if k != "kvTotalTokens"})
    with pytest.raises(ValueError, match="waiting"):
        snapshot_from_json({**doc, "waiting": "3"})
    with pytest.raises(ValueError, match="bogus"):
        snapshot_from_json({**doc, "bogus": 1})
    with pytest.raises(ValueError, match="kvFreeTokens"):
        snapshot_from_json({**doc, "kvFreeTokens": 10**9})
    with pytest.raises(ValueError, match="predictedQueueDelayS"):
        snapshot_from_json({**doc, "predictedQueueDelayS": -1.0})


def test_headroom_usage_and_age() -> None:
    s = snap(total=1000, free=600, reserved=200, at=10.0)
    assert s.kv_headroom_tokens == 400
    assert s.kv_usage == pytest.approx(0.6)
    assert s.age_s(10.5) == pytest.approx(0.5)
    assert s.age_s(9.0) == 0.0
    assert snap(total=1000, free=100, reserved=500).kv_headroom_tokens == 0


def test_prefill_and_kv_wait() -> None:
    assert prefill_time_s(COST, 0, 10, 8192) == 0.0
    one = prefill_time_s(COST, 8192, 0, 8192)
    two = prefill_time_s(COST, 8193, 0, 8192)
    assert two > one + COST.c0_s * 0.99  # a second step costs its overhead
    assert prefill_time_s(COST, 1000, 100, 8192) > prefill_time_s(COST, 1000, 0, 8192)
    assert kv_wait_s(0, 0.0) == 0.0
    assert kv_wait_s(100, 0.0) == math.inf
    assert kv_wait_s(100, 50.0) == pytest.approx(2.0)


def test_snapshot_from_view_counts_promises_and_queue() -> None:
    running = (view("a", 100, 10, 110, 7, 50, 80),)  # holds 112 tokens, grows to 180
    waiting = (view("b", 500, 0, 0, 0, 40, 60),)
    v = EngineView(1.0, 16, 100, 40, 8192, 256, running, waiting)
    s = snapshot_from_view(v, "e1", "r1", COST)
    assert isinstance(s, EngineSnapshot)
    assert (s.kv_total_tokens, s.kv_free_tokens) == (1600, 640)
    assert s.kv_reserved_tokens == (500 + 60) + (100 + 80 - 112)
    assert (s.waiting, s.running, s.waiting_prompt_tokens) == (1, 1, 500)
    assert s.predicted_queue_delay_s == pytest.approx(prefill_time_s(COST, 500, 1, 8192))
    step = COST.c0_s + COST.decode_seq_s
    assert s.kv_drain_tokens_per_s == pytest.approx(112 / (40 * step))
    assert s.observed_at == 1.0


def test_snapshot_from_view_waits_for_kv_when_prompts_do_not_fit() -> None:
    running = (view("a", 100, 10, 110, 7, 50, 80), view("b", 100, 10, 110, 7, 20, 80))
    waiting = (view("c", 300, 0, 0, 0, 40, 60),)
    fits = snapshot_from_view(
        EngineView(0.0, 16, 100, 40, 8192, 256, running, waiting), "e", "r", COST
    )
    tight = snapshot_from_view(
        EngineView(0.0, 16, 100, 10, 8192, 256, running, waiting), "e", "r", COST
    )
    step = COST.c0_s + 2 * COST.decode_seq_s
    # 160 free < 300 needed: wait for the soonest finisher (b: 10 more tokens) to free 112
    # tokens, not enough; then a (40 more) frees the rest.
    assert tight.predicted_queue_delay_s == pytest.approx(fits.predicted_queue_delay_s + 40 * step)
