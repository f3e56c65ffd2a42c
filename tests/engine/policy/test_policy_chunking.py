"""SLO-guaranteed dynamic chunking (AccelGen C1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from policy_builders import req

from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy.chunking import DecodeLoad, decode_load, slo_prefill_budget
from sloserve_engine.policy.costmodel import StepCostModel

MODEL = StepCostModel(c0_s=0.006, prefill_token_s=2e-5, decode_seq_s=1.4e-5, decode_ctx_s=4e-8)


def test_decode_load_sums_decodes_and_finds_the_tightest_slo() -> None:
    decodes = [
        req("a", prompt=100, out=5, slo=SLO(tbt_ms=200)),
        req("b", prompt=300, out=1, slo=SLO(tbt_ms=50)),
    ]
    assert decode_load(decodes) == DecodeLoad(2, 406, 0.05)
    assert decode_load([]) == DecodeLoad(0, 0, None)


@pytest.mark.parametrize(
    ("load", "expected"),
    [
        pytest.param(DecodeLoad(0, 0, None), 8192, id="no-decodes-full-chunk"),
        # 0.095 s limit: (0.095 - 0.006 - 11*1.4e-5 - 10_000*4e-8) / 2e-5 = 4422.3
        pytest.param(DecodeLoad(11, 10_000, 0.1), 4422, id="tbt-100ms"),
        # 0.0475 s: (0.0475 - 0.006 - 0.000154 - 0.0004) / 2e-5 = 2047.3
        pytest.param(DecodeLoad(11, 10_000, 0.05), 2047, id="tight-class-halves-chunk"),
        # 0.0076 s leaves 0.001046 s = 52 tokens < chunk_min 64: decodes only.
        pytest.param(DecodeLoad(11, 10_000, 0.008), 0, id="below-chunk-min"),
        pytest.param(DecodeLoad(1, 100, 10.0), 8192, id="loose-slo-capped-at-max"),
    ],
)
def test_budget_table(load: DecodeLoad, expected: int) -> None:
    assert slo_prefill_budget(MODEL, load, 64, 8192, margin=0.05) == expected


@given(
    count=st.integers(0, 256),
    ctx=st.integers(0, 1_000_000),
    tbt=st.floats(0.001, 1.0),
    chunk_min=st.integers(1, 512),
    extra=st.integers(0, 8192),
)
def test_budget_respects_bounds_and_the_slo(
    count: int, ctx: int, tbt: float, chunk_min: int, extra: int
) -> None:
    chunk_max = chunk_min + extra
    load = DecodeLoad(count, ctx, tbt if count else None)
    c = slo_prefill_budget(MODEL, load, chunk_min, chunk_max, margin=0.05)
    assert c == 0 or chunk_min <= c <= chunk_max
    if count and c:
        assert MODEL.gpu_step_s(c, c, count, ctx) <= 0.95 * tbt + 1e-12
    if count and c < chunk_max:
        assert MODEL.gpu_step_s(max(c + 1, chunk_min), 0, count, ctx) > 0.95 * tbt - 1e-12


@pytest.mark.parametrize(
    ("out", "first", "bank"),
    [
        pytest.param(10, 9.5, 0.5, id="ahead-of-target"),
        pytest.param(10, 8.0, 0.1, id="behind-target-still-gets-one-tbt"),
        pytest.param(1, None, 0.1, id="no-first-token-yet"),
    ],
)
def test_banked_time(out: int, first: float | None, bank: float) -> None:
    load = decode_load([req("a", prompt=100, out=out, first_token=first)], now=10.0)
    assert load.tightest_bank_s == pytest.approx(bank)


def test_bank_cap_bounds_the_step() -> None:
    load = DecodeLoad(11, 10_000, 0.1, tightest_bank_s=5.0)
    capped = slo_prefill_budget(MODEL, load, 64, 100_000, margin=0.05, bank_cap=1.5)
    assert MODEL.gpu_step_s(capped, capped, 11, 10_000) <= 0.15 * 0.95
    assert MODEL.gpu_step_s(capped + 1, capped + 1, 11, 10_000) > 0.15 * 0.95
    plain = slo_prefill_budget(MODEL, load, 64, 100_000, margin=0.05)
    assert plain < capped
