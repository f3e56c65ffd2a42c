"""Acceptance 1 as a test: the simulated ``vllm`` policy against the H200 baselines.

Each case is one full 1,500-request replay (about 2 s). Rows the simulator does
not yet reproduce are listed in KNOWN_GAPS with the reason (docs/benchmarks.md).
"""

from __future__ import annotations

import pytest

from sloserve_engine.sim import load_profile
from sloserve_engine.sim.fidelity import REFERENCE, compare

KNOWN_GAPS = {
    ("async", 10, "tbt_p99"): "prefill-heavy async steps ~19% faster than the sync step logs",
    ("async", 16, "ttft_p50"): "bistable knee: backlog regime needs 1-2 % slower steps (docs)",
    ("async", 16, "ttft_p99"): "bistable knee: backlog regime needs 1-2 % slower steps (docs)",
}


@pytest.mark.parametrize(("scheduling", "rate"), sorted(REFERENCE))
def test_vllm_policy_reproduces_gpu_baseline(scheduling: str, rate: float) -> None:
    rows = compare(scheduling, rate, load_profile())  # type: ignore[arg-type]
    failures = [
        f"{r.metric}: gpu {r.gpu:.4g} sim {r.sim:.4g} ({r.rel_error:+.0%})"
        for r in rows
        if not r.ok and (scheduling, rate, r.metric) not in KNOWN_GAPS
    ]
    assert not failures, failures
    # A known gap that closes should be removed from the list (keeps it honest).
    fixed = [r.metric for r in rows if r.ok and (scheduling, rate, r.metric) in KNOWN_GAPS]
    assert not fixed, f"now within tolerance, remove from KNOWN_GAPS: {fixed}"
