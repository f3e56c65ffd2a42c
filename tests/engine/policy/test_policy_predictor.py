"""Output-length predictor, arrival-rate EWMA and the rate-adjusted confidence."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy.predictor import (
    ArrivalRate,
    BoundMethod,
    LengthPredictor,
    PredictorConfig,
    RateDirection,
    abs_error_tokens,
    confidence_for_rate,
)
from sloserve_engine.policy.views import FinishedInfo

CHAT = SLO(slo_class="chat")
BATCH = SLO(slo_class="batch", ttft_ms=10000, tbt_ms=500)


def _finish(output: int, prompt: int = 100, slo: SLO = CHAT, predicted: int = 0) -> FinishedInfo:
    return FinishedInfo("x", prompt, output, slo, predicted, 0.0)


def test_cold_start_uses_the_prior() -> None:
    p = LengthPredictor(PredictorConfig(prior_output=200, prior_bound=900))
    pred = p.predict(CHAT, 100, 4000, 0.9)
    assert (pred.predicted_output, pred.output_bound) == (200, 900)


def test_prediction_is_capped_by_the_model_limit() -> None:
    p = LengthPredictor(PredictorConfig(prior_output=200, prior_bound=900))
    pred = p.predict(CHAT, 100, 150, 0.9)
    assert (pred.predicted_output, pred.output_bound) == (150, 150)


def test_learns_median_and_quantile_of_its_key() -> None:
    p = LengthPredictor(PredictorConfig(min_samples=10))
    for v in range(1, 101):
        p.observe(_finish(v))
    pred = p.predict(CHAT, 100, 4000, 0.9)
    assert pred.predicted_output == 50
    assert pred.output_bound == 90


@pytest.mark.parametrize(
    ("prompt", "slo", "expected"),
    [
        pytest.param(100, CHAT, 10, id="own-bucket"),
        pytest.param(2000, CHAT, 10, id="backs-off-to-class"),
        pytest.param(100, BATCH, 10, id="backs-off-to-global"),
    ],
)
def test_backs_off_to_coarser_keys(prompt: int, slo: SLO, expected: int) -> None:
    p = LengthPredictor(PredictorConfig(min_samples=5, prior_output=999, prior_bound=999))
    for _ in range(5):
        p.observe(_finish(10, prompt=100))
    assert p.predict(slo, prompt, 4000, 0.9).predicted_output == expected


def test_buckets_separate_prompt_lengths() -> None:
    p = LengthPredictor(PredictorConfig(min_samples=5, prompt_bucket_edges=(256,)))
    for _ in range(5):
        p.observe(_finish(10, prompt=100))
        p.observe(_finish(500, prompt=1000))
    assert p.predict(CHAT, 50, 4000, 0.9).predicted_output == 10
    assert p.predict(CHAT, 5000, 4000, 0.9).predicted_output == 500


def test_window_forgets_old_samples() -> None:
    p = LengthPredictor(PredictorConfig(window=10, min_samples=10))
    for _ in range(10):
        p.observe(_finish(1000))
    for _ in range(10):
        p.observe(_finish(20))
    pred = p.predict(CHAT, 100, 4000, 0.99)
    assert (pred.predicted_output, pred.output_bound) == (20, 20)


def test_hoeffding_pad_formula() -> None:
    config = PredictorConfig(min_samples=2, bound_method=BoundMethod.HOEFFDING)
    p = LengthPredictor(config)
    values = [100, 300] * 50
    for v in values:
        p.observe(_finish(v))
    pad = 300 * math.sqrt(math.log(1 / (1 - 0.9)) / (2 * len(values)))
    assert p.predict(CHAT, 100, 4000, 0.9).output_bound == math.ceil(200 + pad)


@settings(max_examples=60, deadline=None)
@given(
    samples=st.lists(st.integers(1, 2000), min_size=30, max_size=300),
    confidence=st.floats(0.5, 0.99),
)
def test_quantile_bound_covers_the_requested_share(samples: list[int], confidence: float) -> None:
    p = LengthPredictor(PredictorConfig(min_samples=30, window=1000))
    for v in samples:
        p.observe(_finish(v))
    pred = p.predict(CHAT, 100, 10_000, confidence)
    covered = sum(v <= pred.output_bound for v in samples) / len(samples)
    assert covered >= confidence
    assert pred.predicted_output <= pred.output_bound


def test_abs_error_is_tracked() -> None:
    p = LengthPredictor()
    p.observe(_finish(300, predicted=200))
    p.observe(_finish(100, predicted=150))
    assert abs_error_tokens(_finish(300, predicted=200)) == 100
    assert (p.finished, p.abs_error_sum) == (2, 150)


@pytest.mark.parametrize(
    ("direction", "rate", "expected"),
    [
        pytest.param(RateDirection.OFF, 30.0, 0.9, id="off-ignores-rate"),
        pytest.param(RateDirection.DOWN, 5.0, 0.9, id="down-at-half-capacity-unchanged"),
        pytest.param(RateDirection.DOWN, 10.0, 0.75, id="down-busy-lowers"),
        pytest.param(RateDirection.DOWN, 0.0, 1.0, id="down-idle-raises-to-max"),
        pytest.param(RateDirection.UP, 10.0, 1.0, id="up-busy-raises-to-max"),
        pytest.param(RateDirection.UP, 0.0, 0.75, id="up-idle-lowers"),
        pytest.param(RateDirection.DOWN, 100.0, 0.5, id="clipped-to-min"),
    ],
)
def test_confidence_moves_with_arrival_rate(
    direction: RateDirection, rate: float, expected: float
) -> None:
    config = PredictorConfig(
        rate_direction=direction, rate_gain=0.3, rate_capacity=10.0, confidence_max=1.0
    )
    assert confidence_for_rate(0.9, rate, config) == pytest.approx(expected)


@pytest.mark.parametrize("rate", [2.0, 16.0])
def test_arrival_rate_estimates_a_poisson_stream(rate: float) -> None:
    rng = random.Random(7)
    est = ArrivalRate(tau_s=30.0)
    t = 0.0
    while t < 600:
        est.observe(t)
        t += rng.expovariate(rate)
    assert est.rate(t) == pytest.approx(rate, rel=0.25)


def test_arrival_rate_decays_when_arrivals_stop() -> None:
    est = ArrivalRate(tau_s=10.0)
    for k in range(200):
        est.observe(k * 0.1)
    busy = est.rate(20.0)
    assert est.rate(60.0) == pytest.approx(busy * math.exp(-4.0), rel=1e-6)


def test_arrival_rate_start_up_is_not_read_as_idle() -> None:
    est = ArrivalRate(tau_s=30.0)
    for k in range(50):
        est.observe(k * 0.1)
    assert est.rate(5.0) == pytest.approx(10.0)
    assert ArrivalRate().rate(3.0) == 0.0
    with pytest.raises(ValueError, match="tau_s"):
        ArrivalRate(0.0)
