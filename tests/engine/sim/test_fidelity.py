"""The simulator against the H200 runs: latencies, preemptions and SLO attainment.

Each case is one full replay (about 1-3 s). Rows the simulator does not
reproduce within tolerance are listed in KNOWN_GAPS with the reason
(docs/benchmarks.md, "Simulator fidelity on attainment"); a gap that closes
must be removed from the list.
"""

from __future__ import annotations

import pytest

from sloserve_engine.bench.fidelity import (
    ATTAINMENT_TOLERANCE,
    KNEE_RUNS,
    REFERENCES,
    Case,
    Comparison,
    compare,
)
from sloserve_engine.sim import load_profile

KNEE = "bistable knee: GPU preempts ~2x more at 16 req/s, backlog persists (docs)"
KNEE_ATTAINMENT = "knee: GPU runs 75.5-84.9 % on three days, sim on the no-backlog side (docs)"
PREFILL = "prefill-heavy async steps ~19% faster than the sync step logs say (docs)"
SLO_P50 = "SLO-aware policies: GPU TTFT p50 10-30 % above the sim at 13-19 req/s (docs)"
CONV16 = Case("async", 16.0)
KNOWN_GAPS = {
    ("gpu-readme", Case("async", 10), "tbt_p99"): PREFILL,
    ("gpu-readme", CONV16, "ttft_p50"): KNEE,
    ("gpu-readme", CONV16, "ttft_p99"): KNEE,
    ("gpu-readme", CONV16, "slo_attainment"): KNEE_ATTAINMENT,
    ("gpu-2026-11-21", Case("async", 10), "tbt_p99"): PREFILL,
    ("gpu-2026-11-21", CONV16, "ttft_p50"): KNEE,
    ("gpu-2026-11-21", CONV16, "ttft_p99"): KNEE,
    ("gpu-2026-11-21", CONV16, "preemptions"): KNEE,
    ("gpu-2026-11-21", CONV16, "slo_attainment"): KNEE_ATTAINMENT,
    ("gpu-2026-12-03", CONV16, "ttft_p50"): KNEE,
    ("gpu-2026-12-03", CONV16, "ttft_p99"): KNEE,
    ("gpu-2026-12-03", CONV16, "slo_attainment"): KNEE_ATTAINMENT,
    ("gpu-2026-12-03", Case("async", 16.0, policy="sloserve@f8eaa5d"), "ttft_p50"): SLO_P50,
}


@pytest.mark.parametrize(
    ("reference", "case"),
    [(name, case) for name, ref in sorted(REFERENCES.items()) for case in sorted(ref)],
    ids=lambda x: x.label.replace(" ", "-") if isinstance(x, Case) else str(x),
)
def test_simulator_reproduces_gpu_runs(reference: str, case: Case) -> None:
    rows = compare(case, load_profile(), reference)
    assert "slo_attainment" in {r.metric for r in rows}  # every run checks attainment
    failures = [
        f"{r.metric}: gpu {r.gpu:.4g} sim {r.sim:.4g} ({r.rel_error:+.0%})"
        for r in rows
        if not r.ok and (reference, case, r.metric) not in KNOWN_GAPS
    ]
    assert not failures, failures
    fixed = [r.metric for r in rows if r.ok and (reference, case, r.metric) in KNOWN_GAPS]
    assert not fixed, f"now within tolerance, remove from KNOWN_GAPS: {fixed}"


@pytest.mark.parametrize(
    ("gpu", "sim", "spread", "ok"),
    [
        pytest.param(0.774, 0.80, None, True, id="within-3-points"),
        pytest.param(0.774, 0.811, None, False, id="12-points-over-fails"),
        pytest.param(0.755, 0.87, (0.755, 0.849), True, id="knee-inside-spread"),
        pytest.param(0.755, 0.907, (0.755, 0.849), False, id="knee-outside-spread"),
    ],
)
def test_attainment_tolerance_is_absolute_points(
    gpu: float, sim: float, spread: tuple[float, float] | None, ok: bool
) -> None:
    row = Comparison(CONV16, "slo_attainment", gpu, sim, ATTAINMENT_TOLERANCE, spread)
    assert row.ok is ok


def test_knee_runs_disagree_by_more_than_the_tolerance() -> None:
    for runs in KNEE_RUNS.values():
        values = [a for _, a in runs]
        assert max(values) - min(values) > ATTAINMENT_TOLERANCE
