"""The capacity the policies derive from the cost model (issue 14: no hard-coded 17 req/s)."""

from __future__ import annotations

import pytest

from sloserve_engine.bench.capacity import capacity_bound
from sloserve_engine.policy.capacity import CapacityEstimate, fluid_capacity
from sloserve_engine.policy.costmodel import StepCostModel
from sloserve_engine.sim import SimConfig, SimProfile
from sloserve_engine.sim.workload import WorkloadSpec, build_workload

MODEL = StepCostModel(
    c0_s=0.006, prefill_token_s=2e-5, decode_seq_s=1.4e-5, decode_ctx_s=4e-8, prefill_attn_s=1e-9
)


def test_kv_bound_concurrency_and_compute_bound_rate() -> None:
    cap = fluid_capacity(MODEL, 1000, 200, 1107.5, 97_488, 256, 0.006)
    assert cap.max_concurrency == pytest.approx(97_488 / 1107.5)
    per_request = (
        1000 * 2e-5
        + 1e-9 * 500_500
        + 200 * (1.4e-5 + 4e-8 * 1107.5)
        + 200 * 0.006 / (97_488 / 1107.5)
    )
    assert cap.rate == pytest.approx(1 / per_request)


def test_estimate_needs_traffic_and_then_follows_it() -> None:
    est = CapacityEstimate(MODEL, prior_output=200, min_samples=2)
    assert est.update(97_488, 16, 256) is None  # nothing seen: no claim
    est.observe_arrival(1000)
    first = est.update(97_488, 16, 256)
    assert first == pytest.approx(fluid_capacity(MODEL, 1000, 200, 1107.5, 97_488, 256, 0.006).rate)
    for _ in range(2):
        est.observe_finish(800)  # longer outputs than the prior: less capacity
    assert est.update(97_488, 16, 256) < first  # type: ignore[operator]
    assert est.update(2 * 97_488, 16, 256) > est.update(97_488, 16, 256)  # type: ignore[operator]


def test_policy_estimate_is_close_to_the_trace_bound() -> None:
    # The trace's bound (exact mean footprint and attention) and the policy's estimate
    # from running means (sync: no async overlap in either) agree within 10 %.
    requests = build_workload(WorkloadSpec(trace="azure-conv", requests=1500, rate=16))
    config = SimConfig(scheduling="sync")
    bound = capacity_bound(requests, SimProfile(MODEL), config)
    est = CapacityEstimate(MODEL, min_samples=1)
    for r in requests:
        est.observe_arrival(r.prompt_tokens)
        est.observe_finish(r.output_tokens)
    rate = est.update(config.usable_blocks * config.block_size, 16, config.max_num_seqs)
    assert rate == pytest.approx(bound.rate, rel=0.10)
