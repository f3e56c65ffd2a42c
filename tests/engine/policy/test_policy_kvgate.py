"""KV admission gate: reservation for the predicted length, lending, reserve, extension."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from policy_builders import req

from sloserve_engine.policy.kvgate import (
    Gate,
    GateConfig,
    KVLedger,
    admissible,
    blocks_for,
    reserved_output,
    reserved_total_tokens,
)
from sloserve_engine.policy.views import RequestView

B = 16


def _cfg(gate: Gate, ratio: float = 0.0, guard: int = 0) -> GateConfig:
    return GateConfig(
        gate=gate, reservation_ratio=ratio, extension_fraction=0.25, guard_steps=guard
    )


@pytest.mark.parametrize(
    ("out", "bound", "expected"),
    [
        pytest.param(10, 200, 200, id="far-from-bound"),
        pytest.param(184, 200, 200, id="exactly-one-block-left"),
        pytest.param(185, 200, 250, id="within-a-block-extends-by-a-quarter"),
        pytest.param(240, 200, 300, id="overrun-extends-in-steps"),
        pytest.param(3990, 3000, 4000, id="capped-at-model-limit"),
    ],
)
def test_proactive_extension(out: int, bound: int, expected: int) -> None:
    r = req(prompt=100, out=out, bound=bound, max_out=4000)
    assert reserved_output(r, B, 0.25) == expected


def test_extension_never_below_what_is_generated() -> None:
    r = req(prompt=100, out=4000, bound=100, max_out=4000)
    assert reserved_output(r, B, 0.25) == 4000


# One running request: prompt 160 (10 blocks), 0 output, bound 160 -> total 320 (20 blocks).
HOST = req("h", prompt=160, out=1, computed=160, blocks=10, bound=160)


@pytest.mark.parametrize(
    ("gate", "free", "candidate", "admit"),
    [
        pytest.param(Gate.NONE, 0, req("c", prompt=10_000, bound=10), True, id="none-always"),
        pytest.param(
            Gate.WATERMARK, 30, req("c", prompt=160, bound=10_000), True, id="wm-prompt-fits"
        ),
        pytest.param(Gate.WATERMARK, 9, req("c", prompt=160), False, id="wm-prompt-too-big"),
        # Reservation: host grows 10 more blocks; candidate needs 20 in total.
        pytest.param(Gate.RESERVATION, 30, req("c", prompt=160, bound=160), True, id="resv-exact"),
        pytest.param(
            Gate.RESERVATION, 29, req("c", prompt=160, bound=160), False, id="resv-1-short"
        ),
        # Lending: the host needs its 10 blocks only as it grows one token per step; a short
        # candidate (bound 16 tokens) is gone long before, so it may use them.
        pytest.param(Gate.LENDING, 13, req("c", prompt=160, bound=16), True, id="lend-short-guest"),
        pytest.param(
            Gate.LENDING, 12, req("c", prompt=160, bound=160), False, id="lend-long-guest"
        ),
    ],
)
def test_gate_table(gate: Gate, free: int, candidate: RequestView, admit: bool) -> None:
    assert admissible(_cfg(gate), free, 1000, B, [HOST], candidate) is admit


@pytest.mark.parametrize("gate", [Gate.WATERMARK, Gate.RESERVATION, Gate.LENDING])
def test_admissions_may_not_take_the_reserve(gate: Gate) -> None:
    # Reserve = 10% of 1000 = 100 blocks. The candidate needs 1 prompt block and, with its
    # bound of 1 token extended a block ahead, 3 blocks in all.
    cfg = _cfg(gate, ratio=0.1)
    assert not admissible(cfg, 100, 1000, B, [], req("c", prompt=16, bound=1))
    assert admissible(cfg, 103, 1000, B, [], req("c", prompt=16, bound=1))


@pytest.mark.parametrize("gate", [Gate.WATERMARK, Gate.RESERVATION, Gate.LENDING])
def test_a_paused_stream_may_resume_into_the_reserve(gate: Gate) -> None:
    # Same state as above, but the candidate already streamed 5 tokens before it was
    # preempted: it is running work, and the reserve exists to keep streams going.
    cfg = _cfg(gate, ratio=0.1)
    paused = req("p", prompt=11, out=5, computed=0, blocks=0, bound=1)
    assert admissible(cfg, 10, 1000, B, [], paused)
    assert not admissible(cfg, 10, 1000, B, [], req("c", prompt=16, bound=1))


def test_reserved_unused_counts_growth_not_held_blocks() -> None:
    ledger = KVLedger(_cfg(Gate.RESERVATION), 990, 1000, B, [HOST])
    assert ledger.reserved_unused == 10


def _brute_force_timeline(
    cfg: GateConfig, free: int, total: int, running: list[RequestView], cand: RequestView
) -> bool:
    """Step-by-step check of the lending rule, with the same per-request block bound."""
    reserve = -(-total * cfg.reservation_ratio // 1)
    other = max(total - free - sum(r.blocks_held for r in running), 0)
    cap = total - reserve - other
    if free - blocks_for(cand.total_tokens, B) < reserve:
        return False
    lives = []
    for r in [*running, cand]:
        x = max(r.total_tokens, r.computed_tokens)
        end = max(reserved_total_tokens(r, B, cfg.extension_fraction), x)
        lives.append((x, end - x + cfg.guard_steps, r is cand, blocks_for(end, B)))
    horizon = max(d for _, d, _, _ in lives)
    for t in range(horizon + 1):
        demand = 0.0
        for x, d, is_cand, cap_blocks in lives:
            if t <= d:
                demand += min(cap_blocks, (x + t + B - 1) // B) if is_cand else (x + t + B - 1) / B
        if demand > cap:
            return False
    return True


_requests = st.builds(
    lambda prompt, out, bound: req(
        "x",
        prompt=prompt,
        out=out,
        bound=bound,
        computed=prompt + out,
        blocks=blocks_for(prompt + out, B),
    ),
    st.integers(1, 400),
    st.integers(0, 300),
    st.integers(1, 300),
)


@settings(max_examples=150, deadline=None)
@given(
    running=st.lists(_requests, max_size=8),
    cand_prompt=st.integers(1, 400),
    cand_bound=st.integers(1, 300),
    total=st.integers(40, 200),
    spare=st.integers(0, 60),
    ratio=st.sampled_from([0.0, 0.05, 0.2]),
    guard=st.integers(0, 3),
)
def test_lending_matches_a_step_by_step_timeline(
    running: list[RequestView],
    cand_prompt: int,
    cand_bound: int,
    total: int,
    spare: int,
    ratio: float,
    guard: int,
) -> None:
    """(An empty engine is the one exception, see test_an_empty_engine_admits_whatever_fits.)"""
    assume(running)
    held = sum(r.blocks_held for r in running)
    total = max(total, held)
    free = min(total - held, spare + max(total - held - 60, 0))
    cand = req("c", prompt=cand_prompt, bound=cand_bound)
    cfg = _cfg(Gate.LENDING, ratio, guard)
    assert admissible(cfg, free, total, B, running, cand) is _brute_force_timeline(
        cfg, free, total, running, cand
    )


@settings(max_examples=150, deadline=None)
@given(
    running=st.lists(_requests, max_size=8),
    cands=st.lists(st.tuples(st.integers(1, 400), st.integers(1, 300)), min_size=1, max_size=6),
    spare=st.integers(0, 200),
    ratio=st.sampled_from([0.0, 0.05, 0.2]),
)
def test_reservation_never_admits_beyond_capacity(
    running: list[RequestView], cands: list[tuple[int, int]], spare: int, ratio: float
) -> None:
    """Admitting one by one, every admitted reservation plus the reserve fits in the cache.

    (An empty engine is the one exception, see test_an_empty_engine_admits_whatever_fits.)
    """
    assume(running)
    held = sum(r.blocks_held for r in running)
    total = held + spare
    cfg = _cfg(Gate.RESERVATION, ratio)
    ledger = KVLedger(cfg, total - held, total, B, running)
    admitted = []
    for k, (prompt, bound) in enumerate(cands):
        cand = req(f"c{k}", prompt=prompt, bound=bound)
        if ledger.admits(cand):
            ledger.admit(cand)
            admitted.append(cand)
    reserve = -(-total * ratio // 1)
    committed = sum(
        max(blocks_for(reserved_total_tokens(r, B, 0.25), B), r.blocks_held)
        for r in [*running, *admitted]
    )
    if admitted:
        assert committed + reserve <= total
    assert ledger.free_blocks >= (reserve if admitted else 0)


@settings(max_examples=150, deadline=None)
@given(
    running=st.lists(_requests, max_size=8),
    cand_prompt=st.integers(1, 400),
    cand_bound=st.integers(1, 300),
    spare=st.integers(0, 200),
)
def test_gates_are_ordered_by_permissiveness(
    running: list[RequestView], cand_prompt: int, cand_bound: int, spare: int
) -> None:
    """reservation admits => lending admits => watermark admits (same reserve)."""
    held = sum(r.blocks_held for r in running)
    total = held + spare + 1
    cand = req("c", prompt=cand_prompt, bound=cand_bound)
    verdicts = [
        admissible(_cfg(g, 0.05), total - held, total, B, running, cand)
        for g in (Gate.RESERVATION, Gate.LENDING, Gate.WATERMARK)
    ]
    assert verdicts == sorted(verdicts)


def test_ledger_admit_equals_rebuilding_with_the_admitted_request() -> None:
    cfg = _cfg(Gate.LENDING, 0.05, guard=2)
    running = [req(f"r{k}", prompt=100 + 50 * k, out=10 * k + 1, bound=120) for k in range(5)]
    held = sum(r.blocks_held for r in running)
    first = req("a", prompt=300, bound=50)
    ledger = KVLedger(cfg, 200 - held, 200, B, running)
    ledger.admit(first)
    admitted = req("a", prompt=300, bound=50, computed=300, blocks=blocks_for(300, B))
    fresh = KVLedger(cfg, 200 - held - blocks_for(300, B), 200, B, [*running, admitted])
    for prompt, bound in [(50, 10), (200, 100), (400, 300), (16, 500)]:
        cand = req("c", prompt=prompt, bound=bound)
        assert ledger.admits(cand) is fresh.admits(cand)


@pytest.mark.parametrize("gate", [Gate.WATERMARK, Gate.RESERVATION, Gate.LENDING])
def test_an_empty_engine_admits_whatever_fits(gate: Gate) -> None:
    """Progress: a reservation bigger than the whole cache must not stall an idle engine."""
    cand = req("c", prompt=1, bound=511, max_out=511)  # 32 blocks reserved, 23 exist
    assert admissible(_cfg(gate, ratio=0.05), 23, 23, B, [], cand)
    assert not admissible(_cfg(gate, ratio=0.05), 23, 23, B, [], req("c", prompt=23 * 16 + 1))
