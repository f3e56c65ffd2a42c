"""The pacing benchmark runs end to end (tiny load) and reads the engine's histograms right."""

from __future__ import annotations

import pytest

from sloserve_engine.bench.pacing import _engine_means, main

METRICS = """\
# HELP sloserve_ttft_seconds x
# TYPE sloserve_ttft_seconds histogram
sloserve_ttft_seconds_count{slo_class="a"} 2.0
sloserve_ttft_seconds_sum{slo_class="a"} 0.5
sloserve_ttft_seconds_count{slo_class="b"} 2.0
sloserve_ttft_seconds_sum{slo_class="b"} 0.3
# HELP sloserve_tbt_seconds x
# TYPE sloserve_tbt_seconds histogram
sloserve_tbt_seconds_count{slo_class="a"} 1.0
sloserve_tbt_seconds_sum{slo_class="a"} 0.02
"""


def test_engine_means_pool_all_slo_classes() -> None:
    ttft, tbt, n = _engine_means(METRICS)
    assert ttft == pytest.approx(0.2)
    assert tbt == pytest.approx(0.02)
    assert n == 4


def test_bench_runs_against_a_real_simulated_engine(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--clients", "2", "--requests", "4", "--prompt", "16", "--output", "3"]
    assert main([*argv, "--time-scale", "10"]) == 0
    out = capsys.readouterr().out
    assert "4 requests (16 in / 3 out), 2 clients" in out
    assert "engine counted 4" in out
    assert "mean TBT" in out
