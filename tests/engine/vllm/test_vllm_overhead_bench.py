"""The overhead benchmark runs end to end (its numbers are reported by the command, not here)."""

from __future__ import annotations

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from sloserve_engine.bench import overhead as overhead_bench

pytestmark = pytest.mark.vllm


def test_bench_runs_stock_and_a_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert overhead_bench.main(["--requests", "12", "--policies", "vllm"]) == 0
    out = capsys.readouterr().out
    assert "stock" in out and "vllm" in out and "median ms" in out


def test_workload_is_deterministic_and_capped() -> None:
    shapes = overhead_bench.workload(200, seed=3)
    assert shapes == overhead_bench.workload(200, seed=3)
    assert all(4 <= p <= 2000 and 1 <= o <= 1000 for p, o in shapes)
