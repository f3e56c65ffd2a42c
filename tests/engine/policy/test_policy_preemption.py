"""Victim scoring (CacheOPT C4), swap vs recompute (C5), SLO slack."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_builders import req

from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy.costmodel import StepCostModel
from sloserve_engine.policy.preemption import (
    choose_mode,
    preemption_cost_s,
    remaining_tokens_estimate,
    victim_score,
    victim_scorer,
)
from sloserve_engine.policy.slack import TokenInterval, latest_start
from sloserve_engine.policy.views import PreemptionMode, RequestView

MODEL = StepCostModel(c0_s=0.006, prefill_token_s=2e-5)
BASE = req("base", prompt=1000, out=100, bound=400)


def _score(r: RequestView, model: StepCostModel = MODEL) -> float:
    return victim_score(r, model, 16, 0.25)


@pytest.mark.parametrize(
    "better_victim",
    [
        pytest.param(
            req("x", prompt=1000, out=100, bound=400, slo=SLO(tbt_ms=500)), id="looser-tbt"
        ),
        pytest.param(req("x", prompt=1000, out=100, bound=900), id="longer-remaining"),
        pytest.param(req("x", prompt=300, out=100, bound=400), id="cheaper-to-restore"),
    ],
)
def test_each_factor_raises_the_score(better_victim: RequestView) -> None:
    assert _score(better_victim) > _score(BASE)


def test_remaining_includes_unfinished_prompt() -> None:
    prefilling = req("p", prompt=1000, out=0, computed=400, bound=200)
    assert remaining_tokens_estimate(prefilling, 16, 0.25) == 600 + 200


@pytest.mark.parametrize(
    ("bandwidth", "forced", "expected"),
    [
        pytest.param(25e9, None, PreemptionMode.SWAP, id="pcie-swap-beats-recompute"),
        pytest.param(1e9, None, PreemptionMode.RECOMPUTE, id="slow-link-recompute"),
        pytest.param(25e9, PreemptionMode.RECOMPUTE, PreemptionMode.RECOMPUTE, id="knob-forces"),
        pytest.param(1e9, PreemptionMode.SWAP, PreemptionMode.SWAP, id="knob-forces-swap"),
    ],
)
def test_swap_or_recompute(
    bandwidth: float, forced: PreemptionMode | None, expected: PreemptionMode
) -> None:
    model = StepCostModel(
        c0_s=0.006, prefill_token_s=2e-5, d2h_bytes_per_s=bandwidth, h2d_bytes_per_s=bandwidth
    )
    victim = req("v", prompt=1000, out=100)
    assert choose_mode(victim, model, forced) is expected
    assert preemption_cost_s(victim, model) == pytest.approx(
        min(model.swap_s(1099), model.prefill_s(1099))
    )


def test_nothing_computed_recomputes() -> None:
    assert choose_mode(req("v", prompt=10, computed=0), MODEL, None) is PreemptionMode.RECOMPUTE


@pytest.mark.parametrize(
    ("r", "expected"),
    [
        pytest.param(
            req("new", prompt=1000, arrival=5.0), 5.0 + 1.0 - MODEL.prefill_s(1000), id="ttft"
        ),
        pytest.param(
            # 100 of a predicted 200 tokens: TPOT budget 199 * 0.1 s from the first token,
            # minus 100 more tokens at 0.02 s, minus the restore (swap of 1099 tokens).
            req("dec", prompt=1000, out=100, pred=200, first_token=5.0),
            5.0 + 19.9 - 2.0 - MODEL.swap_s(1099),
            id="tpot-bank",
        ),
        pytest.param(
            req("over", prompt=1000, out=300, pred=200, first_token=5.0),
            5.0 + 30.0 - 0.02 - MODEL.swap_s(1299),
            id="past-prediction",
        ),
    ],
)
def test_latest_start(r: RequestView, expected: float) -> None:
    assert latest_start(r, MODEL, 0.02) == pytest.approx(expected)


def test_token_interval_learns_busy_spacing_and_skips_idle() -> None:
    ti = TokenInterval(initial_s=0.02, alpha=0.5)
    ti.observe(0.0, busy=True)
    ti.observe(0.04, busy=True)
    assert ti.value == pytest.approx(0.03)
    ti.observe(5.0, busy=False)  # idle gap: not a step
    ti.observe(9.0, busy=True)
    assert ti.value == pytest.approx(0.03)
    ti.observe(9.03, busy=True)
    assert ti.value == pytest.approx(0.03)


@settings(max_examples=200, deadline=None)
@given(
    prompt=st.integers(1, 8000),
    out=st.integers(0, 2000),
    computed_share=st.floats(0.0, 1.0),
    bound=st.integers(1, 3000),
    tbt=st.sampled_from([0.05, 0.1, 0.2]),
)
def test_hoisted_scorer_equals_victim_score(
    prompt: int, out: int, computed_share: float, bound: int, tbt: float
) -> None:
    model = StepCostModel(c0_s=0.006, prefill_token_s=2e-5, prefill_ctx_s=1e-9)
    computed = int((prompt + out) * computed_share)
    r = req("r", prompt=prompt, out=out, computed=computed, bound=bound, slo=SLO(tbt_ms=tbt * 1000))
    assert victim_scorer(model, 16, 0.25)(r) == pytest.approx(victim_score(r, model, 16, 0.25))
