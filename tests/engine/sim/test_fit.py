"""Cost-model fitting from step logs: the attention feature and the absolute-error fit."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from sloserve_engine.bench.fit import attention_feature, fit_profile, read_step_logs
from sloserve_engine.policy.costmodel import attention_pairs

COLUMNS = (
    "t_sched,t_update,n_reqs,n_prefill_reqs,prefill_tokens,n_decode,decode_ctx_sum,prefill_ctx_sum"
)


def _row(n_prefill: int, prefill: int, ctx: int) -> dict[str, str]:
    return {
        "n_prefill_reqs": str(n_prefill),
        "prefill_tokens": str(prefill),
        "prefill_ctx_sum": str(ctx),
    }


def test_attention_feature_is_exact_only_for_one_prefill() -> None:
    assert attention_feature(_row(0, 0, 0)) == 0.0
    # one chunk of 2,000 after 3,000 computed (the log counts context after the chunk)
    assert attention_feature(_row(1, 2000, 5000)) == attention_pairs(2000, 3000)
    assert math.isnan(attention_feature(_row(2, 2000, 5000)))  # how it splits is unknown
    logged = {**_row(2, 2000, 5000), "prefill_attn_sum": "123456"}  # step logs since issue 14
    assert attention_feature(logged) == 123456.0


def test_fit_recovers_a_quadratic_step_model(tmp_path: Path) -> None:
    truth = np.array([0.006, 1.8e-5, 1.3e-6, 1.7e-5, 3.4e-8, 1.4e-9])
    rng = np.random.default_rng(0)
    path = tmp_path / "steps_on1.csv"
    t = 0.0
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS.split(","))
        for _ in range(400):
            n_pf = int(rng.integers(0, 3))
            pf = int(rng.integers(1, 8000)) if n_pf else 0
            prior = int(rng.integers(0, 4000)) if n_pf else 0
            nd = int(rng.integers(0, 100))
            dctx = nd * int(rng.integers(100, 3000))
            x = np.array([1, pf, pf + prior, nd, dctx, attention_pairs(pf, prior)])
            latency = float(x @ truth)
            w.writerow([t, t + latency, n_pf + nd, n_pf, pf, nd, dctx, pf + prior])
            t += latency + 0.001
    doc = fit_profile(read_step_logs([path]), "h200", "test")
    c = doc["coefficients"]
    assert doc["fit"]["n_steps_excluded"] > 0  # steps with two prefills: attention unknown
    assert c["prefill_attn_s"] == pytest.approx(1.4e-9, rel=1e-3)
    assert c["prefill_token_s"] == pytest.approx(1.8e-5, rel=1e-3)
    assert c["c0_s"] == pytest.approx(0.006, rel=1e-3)
