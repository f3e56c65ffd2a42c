from __future__ import annotations

import pytest

from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy.predictor import PredictorConfig
from sloserve_engine.router.demand import DemandEstimator, prompt_tokens


def test_prompt_tokens_counts_ids_or_asks_the_engine() -> None:
    assert prompt_tokens([1, 2, 3], lambda s: 99) == 3
    assert prompt_tokens("hello world", lambda s: len(s.split())) == 2
    assert prompt_tokens("", lambda s: 0) == 1
    with pytest.raises(ValueError, match="negative"):
        prompt_tokens("x", lambda s: -1)


def test_demand_is_prompt_plus_learned_quantile_capped_by_max_tokens() -> None:
    est = DemandEstimator(8192, PredictorConfig(min_samples=10))
    slo = SLO()
    cold = est.demand(100, slo, 0.9)
    assert cold.prompt_tokens == 100 and cold.output_tokens == 1024  # the predictor's prior
    d = cold
    for k in range(100):  # outputs 1..100
        est.observe(str(k), d, k + 1, slo, float(k))
    warm = est.demand(100, slo, 0.9)
    assert warm.output_tokens == 90  # the 0.9-quantile of 1..100
    assert warm.total_tokens == 190
    assert est.demand(100, slo, 0.5).output_tokens == 50
    assert est.demand(100, slo, 0.9, max_tokens=20).output_tokens == 20
    assert est.demand(8190, slo, 0.9).output_tokens == 2  # the model length caps it


@pytest.mark.parametrize(
    ("prompt", "conf", "max_tokens", "match"),
    [(0, 0.9, None, "prompt_tokens"), (10, 1.0, None, "confidence"), (10, 0.9, 0, "max_tokens")],
)
def test_bad_input_is_named(prompt: int, conf: float, max_tokens: int | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DemandEstimator(8192).demand(prompt, SLO(), conf, max_tokens)
