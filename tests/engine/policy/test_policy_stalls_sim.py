"""Issue 5 in the simulator: sloserve must not freeze a stream to win the mean-TPOT SLO.

On the H200, sloserve@16 req/s had 104 requests with a gap over 200 ms between
two tokens (worst 19.8 s) against stock vLLM's 2: preempted streams waited
behind new admissions. The fix has two parts, tested separately here:

- with the default reserve, preemptions (and so preemption stalls) vanish at
  16 req/s, in both preemption modes (the GPU bench has no KV offload
  connector, so there "swap" is a recompute);
- without a reserve, preemptions happen, and the resume order alone must keep
  stalls at stock vLLM's level. Residual stalls come from vLLM's rule that a
  step which preempts admits nothing, which stock vLLM shares. The first 300
  requests of the trace are its burstiest stretch (before the fix: 36 stalls
  against stock's 3).
"""

from __future__ import annotations

import pytest

from sloserve_engine.contract.knobs import Knobs, PreemptionModeName
from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy import make_policy
from sloserve_engine.sim import SimConfig, load_profile
from sloserve_engine.sim.metrics import STALL_S
from sloserve_engine.sim.runner import RunResult, replay
from sloserve_engine.sim.workload import WorkloadSpec, build_workload


def _run(policy: str, requests: int, knobs: Knobs) -> RunResult:
    profile = load_profile()
    trace = build_workload(WorkloadSpec(trace="azure-conv", requests=requests, rate=16))
    return replay(
        trace, make_policy(policy, knobs, profile.step), profile, SimConfig(kv_tokens=97_488), SLO()
    )


@pytest.mark.parametrize("mode", ["auto", "recompute"])
def test_default_sloserve_never_freezes_a_stream_at_16_rps(mode: PreemptionModeName) -> None:
    result = _run("sloserve", 1500, Knobs(preemption_mode=mode))
    assert result.metrics.stalls_over_200ms == 0
    assert result.metrics.max_tbt_p99 < STALL_S
    assert result.metrics.slo_attainment >= 0.95


@pytest.mark.parametrize("mode", ["auto", "recompute"])
def test_without_reserve_paused_streams_resume_as_fast_as_in_stock_vllm(
    mode: PreemptionModeName,
) -> None:
    knobs = Knobs(reservation_ratio=0.0, preemption_mode=mode)
    ours = _run("sloserve", 300, knobs)
    stock = _run("vllm", 300, Knobs())
    assert ours.preemptions > stock.preemptions  # the resume path is exercised
    # At stock's level: at most one more gap over 200 ms (the refitted cost model of issue 14
    # puts a few of these gaps at 0.21-0.26 s instead of 0.19-0.21 s; the old code had 36).
    assert ours.metrics.stalls_over_200ms <= stock.metrics.stalls_over_200ms + 1
    assert ours.metrics.max_tbt_p99 < STALL_S
