"""Admission selection: head-of-line, backfill with protection, Tetris alignment."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_builders import req

from sloserve_engine.policy.batching import Batching, StepResources, select_admissions
from sloserve_engine.policy.kvgate import Gate, GateConfig, KVLedger
from sloserve_engine.policy.views import RequestView

B = 16


def _res(tokens_left: int = 8192, seats: int = 256, chunk_cap: int = 0) -> StepResources:
    return StepResources(
        token_budget=8192,
        tokens_left=tokens_left,
        total_blocks=1000,
        block_size=B,
        seats=seats,
        chunk_cap=chunk_cap,
    )


def _ledger(free: int, gate: Gate = Gate.WATERMARK) -> KVLedger:
    return KVLedger(GateConfig(gate=gate, reservation_ratio=0.0), free, 1000, B, [])


BIG = req("big", prompt=1600, arrival=9.0)  # 100 blocks
SMALL = req("small", prompt=160, arrival=9.5)  # 10 blocks
SMALL2 = req("small2", prompt=160, arrival=9.6)


@pytest.mark.parametrize(
    ("rule", "free", "now", "expected"),
    [
        pytest.param(Batching.HEAD, 50, 10.0, (), id="head-blocks-behind-big"),
        pytest.param(Batching.HEAD, 200, 10.0, ("big", "small", "small2"), id="head-all-fit"),
        pytest.param(Batching.BACKFILL, 50, 10.0, ("small", "small2"), id="backfill-skips-big"),
        pytest.param(Batching.BACKFILL, 50, 30.0, (), id="backfill-protects-starving-big"),
        pytest.param(Batching.BACKFILL, 15, 10.0, ("small",), id="backfill-until-kv-ends"),
    ],
)
def test_priority_rules(rule: Batching, free: int, now: float, expected: tuple[str, ...]) -> None:
    chosen = select_admissions(
        rule, [BIG, SMALL, SMALL2], _res(), _ledger(free), now, protect_after_s=10.0
    )
    assert chosen == expected


@pytest.mark.parametrize("rule", list(Batching))
def test_nothing_is_admitted_past_a_paused_stream_that_does_not_fit(rule: Batching) -> None:
    paused = req("paused", prompt=1500, out=100, computed=0, blocks=0, arrival=9.9)
    assert select_admissions(rule, [paused, SMALL], _res(), _ledger(50), 10.0) == ()
    assert select_admissions(rule, [paused, SMALL], _res(), _ledger(500), 10.0)[0] == "paused"


def test_backfill_lets_paused_streams_pass_each_other_but_no_new_request() -> None:
    big = req("big", prompt=1500, out=100, computed=0, blocks=0, arrival=9.0)
    small = req("small_paused", prompt=150, out=10, computed=0, blocks=0, arrival=9.2)
    chosen = select_admissions(Batching.BACKFILL, [big, small, SMALL], _res(), _ledger(50), 30.0)
    assert chosen == ("small_paused",)


def test_token_budget_and_seats_limit_admissions() -> None:
    assert select_admissions(
        Batching.HEAD, [SMALL, SMALL2], _res(tokens_left=100), _ledger(500), 10.0
    ) == ("small",)
    assert select_admissions(Batching.HEAD, [SMALL, SMALL2], _res(seats=1), _ledger(500), 10.0) == (
        "small",
    )
    assert select_admissions(
        Batching.HEAD, [SMALL, SMALL2], _res(tokens_left=200, chunk_cap=64), _ledger(500), 10.0
    ) == ("small", "small2")


def test_tetris_lets_an_aged_head_go_first_or_block() -> None:
    # BIG waited 21 s: it goes first when it fits, and blocks the others when it does not.
    assert select_admissions(Batching.TETRIS, [BIG, SMALL], _res(), _ledger(500), 30.0)[0] == "big"
    assert select_admissions(Batching.TETRIS, [BIG, SMALL], _res(), _ledger(50), 30.0) == ()
    assert select_admissions(Batching.TETRIS, [BIG, SMALL], _res(), _ledger(50), 10.0) == ("small",)


def test_tetris_prefers_the_candidate_that_fills_the_emptier_resource() -> None:
    # Compute is empty, KV nearly full: the long prompt fills compute best.
    chosen = select_admissions(Batching.TETRIS, [SMALL, BIG], _res(), _ledger(150), 10.0)
    assert chosen[0] == "big"
    # Compute nearly used up: both use the same 100 tokens; the larger KV footprint wins.
    chosen = select_admissions(
        Batching.TETRIS, [SMALL, BIG], _res(tokens_left=100), _ledger(900), 10.0
    )
    assert chosen == ("big",)


@settings(max_examples=100, deadline=None)
@given(
    prompts=st.lists(st.integers(1, 3000), max_size=12),
    free=st.integers(0, 600),
    rule=st.sampled_from(list(Batching)),
    gate=st.sampled_from([Gate.WATERMARK, Gate.RESERVATION, Gate.LENDING]),
)
def test_selection_fits_kv_and_is_a_subset(
    prompts: list[int], free: int, rule: Batching, gate: Gate
) -> None:
    cands: list[RequestView] = [
        req(f"c{k}", prompt=p, bound=100, arrival=9.0 + k / 100) for k, p in enumerate(prompts)
    ]
    ledger = _ledger(free, gate)
    chosen = select_admissions(rule, cands, _res(), ledger, 10.0)
    assert len(set(chosen)) == len(chosen)
    assert set(chosen) <= {c.request_id for c in cands}
    prompt_blocks = sum(
        -(-p // B) for c, p in zip(cands, prompts, strict=True) if c.request_id in chosen
    )
    assert prompt_blocks <= free
    assert ledger.free_blocks == free - prompt_blocks
