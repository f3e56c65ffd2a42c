"""Engine metrics: names, help texts, what record_step/record_finish report, multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy.views import (
    EngineSnapshot,
    PreemptionMode,
    RequestView,
    StepPlan,
)
from sloserve_engine.telemetry.metrics import EngineMetrics, FinishedRequest, kv_pressure

CONTRACT_METRICS = {
    "sloserve_kv_usage_ratio": "gauge",
    "sloserve_kv_reserved_blocks": "gauge",
    "sloserve_kv_pressure_ratio": "gauge",
    "sloserve_slo_attainment_ratio": "gauge",
    "sloserve_slo_window_requests": "gauge",
    "sloserve_predictor_abs_error_tokens": "histogram",
    "sloserve_ttft_seconds": "histogram",
    "sloserve_tbt_seconds": "histogram",
    "sloserve_preemptions": "counter",
    "sloserve_queue_length": "gauge",
    "sloserve_chunk_tokens": "gauge",
    "sloserve_knobs_revision": "gauge",
    "sloserve_requests_finished": "counter",
    "sloserve_requests": "counter",
    "sloserve_engine_info": "gauge",
}
GOLD = SLO(slo_class="gold", ttft_ms=500, tbt_ms=50)


def _req(rid: str, prompt: int, out: int = 0, held: int = 0, slo: SLO = GOLD) -> RequestView:
    return RequestView(
        request_id=rid,
        arrival_time=0.0,
        prompt_tokens=prompt,
        output_tokens=out,
        computed_tokens=prompt + out if held else 0,
        blocks_held=held,
        slo=slo,
        predicted_output=10,
        output_bound=20,
        max_output_tokens=1000,
    )


def _snapshot(running: tuple[RequestView, ...], waiting: tuple[RequestView, ...]) -> EngineSnapshot:
    return EngineSnapshot(
        now=0.0,
        block_size=16,
        total_blocks=10,
        free_blocks=10 - sum(r.blocks_held for r in running),
        max_num_batched_tokens=8192,
        max_num_seqs=256,
        running=running,
        waiting=waiting,
    )


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def test_every_contract_metric_exists_with_type_and_help(registry: CollectorRegistry) -> None:
    EngineMetrics(registry, mode="simulated")
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    for name, kind in CONTRACT_METRICS.items():
        assert name in families, name
        assert families[name].type == kind, name
        assert len(families[name].documentation) > 20, name


@pytest.mark.parametrize("mode", ["simulated", "vllm"])
def test_engine_info_names_the_mode_and_only_it(registry: CollectorRegistry, mode: str) -> None:
    """One series, value 1: the operator reads the label as ``status.engineMode``."""
    EngineMetrics(registry, mode=mode)  # type: ignore[arg-type]
    info = {k: v for k, v in _samples(registry).items() if k[0] == "sloserve_engine_info"}
    assert info == {("sloserve_engine_info", (("mode", mode),)): 1.0}


def test_record_step_reports_kv_queues_chunk_reserve_and_preemptions(
    registry: CollectorRegistry,
) -> None:
    m = EngineMetrics(registry, slo_classes=("gold", "bronze"), mode="simulated")
    bronze = SLO(slo_class="bronze", ttft_ms=5000, tbt_ms=200)
    snap = _snapshot(
        running=(_req("a", 40, out=5, held=3), _req("b", 10, out=1, held=1, slo=bronze)),
        waiting=(_req("c", 100),),
    )
    plan = StepPlan(
        ("a", "b"), ("c",), 8192, notes=(("chunk_tokens", 512.0), ("reserved_blocks", 2.0))
    )
    m.record_step(snap, plan, {PreemptionMode.SWAP: 1, PreemptionMode.RECOMPUTE: 0}, now=1.0)
    s = _samples(registry)
    assert s[("sloserve_kv_usage_ratio", ())] == pytest.approx(0.4)
    # demand: a=max(ceil(45/16)=3, 3)=3, b=1, c=ceil(100/16)=7 -> 11 of 10 blocks
    assert s[("sloserve_kv_pressure_ratio", ())] == pytest.approx(1.1)
    assert s[("sloserve_chunk_tokens", ())] == 512.0
    assert s[("sloserve_kv_reserved_blocks", ())] == 2.0
    assert s[("sloserve_preemptions_total", (("mode", "swap"),))] == 1.0
    assert s[("sloserve_preemptions_total", (("mode", "recompute"),))] == 0.0
    assert s[("sloserve_queue_length", (("queue", "running"), ("slo_class", "gold")))] == 1
    assert s[("sloserve_queue_length", (("queue", "waiting"), ("slo_class", "gold")))] == 1
    assert s[("sloserve_queue_length", (("queue", "running"), ("slo_class", "bronze")))] == 1
    # a class that left the queues drops to zero instead of keeping its last value
    m.record_step(_snapshot((), ()), StepPlan((), (), 64, prefill_chunk_cap=32), {}, now=2.0)
    s = _samples(registry)
    assert s[("sloserve_queue_length", (("queue", "running"), ("slo_class", "bronze")))] == 0
    assert s[("sloserve_chunk_tokens", ())] == 32.0  # no note: the cap
    assert s[("sloserve_kv_reserved_blocks", ())] == 0.0


def test_kv_pressure_of_an_empty_engine_is_zero() -> None:
    assert kv_pressure(_snapshot((), ())) == 0.0


def test_record_finish_feeds_window_counter_and_predictor_error(
    registry: CollectorRegistry,
) -> None:
    m = EngineMetrics(registry, window_s=10.0, slo_classes=("gold",), mode="simulated")
    m.record_finish(
        FinishedRequest(GOLD, 0.0, 0.2, 0.7, 11, predicted_output=15, max_gap_s=0.06), now=0.7
    )
    m.record_finish(
        FinishedRequest(GOLD, 0.0, 0.9, 0.92, 2, predicted_output=2, max_gap_s=0.02), now=1.0
    )
    s = _samples(registry)
    assert s[("sloserve_slo_attainment_ratio", (("kind", "ttft"),))] == 0.5
    assert s[("sloserve_slo_attainment_ratio", (("kind", "tbt"),))] == 1.0
    assert s[("sloserve_slo_attainment_ratio", (("kind", "both"),))] == 0.5
    assert s[("sloserve_slo_attainment_ratio", (("kind", "strict"),))] == 0.5
    assert s[("sloserve_slo_window_requests", ())] == 2
    assert (
        s[("sloserve_requests_finished_total", (("attained", "true"), ("slo_class", "gold")))] == 1
    )
    assert (
        s[("sloserve_requests_finished_total", (("attained", "false"), ("slo_class", "gold")))] == 1
    )
    assert s[("sloserve_predictor_abs_error_tokens_sum", ())] == 4.0
    assert s[("sloserve_predictor_abs_error_tokens_count", ())] == 2
    assert s[("sloserve_ttft_seconds_sum", (("slo_class", "gold"),))] == pytest.approx(1.1)
    assert s[("sloserve_tbt_seconds_sum", (("slo_class", "gold"),))] == pytest.approx(0.07)
    assert s[("sloserve_tbt_seconds_count", (("slo_class", "gold"),))] == 2
    m.refresh(now=20.0)  # both aged out of the 10 s window
    s = _samples(registry)
    assert s[("sloserve_slo_attainment_ratio", (("kind", "both"),))] == 1.0
    assert s[("sloserve_slo_window_requests", ())] == 0


def test_strict_attainment_counts_a_frozen_stream_that_met_its_mean(
    registry: CollectorRegistry,
) -> None:
    m = EngineMetrics(registry, window_s=10.0, mode="simulated")
    # 11 tokens over 0.5 s after the first (50 ms mean) but one 0.3 s freeze: standard, not strict.
    frozen = FinishedRequest(GOLD, 0.0, 0.2, 0.7, 11, 11, max_gap_s=0.3, stall_bound_s=0.2)
    m.record_finish(frozen, now=0.7)
    s = _samples(registry)
    assert s[("sloserve_slo_attainment_ratio", (("kind", "both"),))] == 1.0
    assert s[("sloserve_slo_attainment_ratio", (("kind", "strict"),))] == 0.0
    # The knob decides: with a 0.5 s stall bound the same stream is steady.
    m.record_finish(
        FinishedRequest(GOLD, 1.0, 1.2, 1.7, 11, 11, max_gap_s=0.3, stall_bound_s=0.5), now=1.7
    )
    assert _samples(registry)[("sloserve_slo_attainment_ratio", (("kind", "strict"),))] == 0.5


def test_knobs_revision_gauge(registry: CollectorRegistry) -> None:
    m = EngineMetrics(registry, mode="simulated")
    m.set_knobs_revision(0xFFFFFFFF)
    assert _samples(registry)[("sloserve_knobs_revision", ())] == float(0xFFFFFFFF)


CHILD = textwrap.dedent(
    """
    from sloserve_engine.policy.views import PreemptionMode, StepPlan, EngineSnapshot
    from sloserve_engine.telemetry.metrics import EngineMetrics
    m = EngineMetrics(mode="vllm")
    snap = EngineSnapshot(0.0, 16, 100, 75, 8192, 256, (), ())
    m.record_step(snap, StepPlan((), (), 2048), {PreemptionMode.RECOMPUTE: 3}, now=0.0)
    m.set_knobs_revision(1234)
    """
)


def test_metrics_recorded_in_another_process_aggregate_in_multiprocess_mode(
    tmp_path: Path,
) -> None:
    """The real engine records in vLLM's engine core; the API process serves /metrics."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", CHILD], env=env, check=True, timeout=60)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    s = _samples(registry)
    assert s[("sloserve_kv_usage_ratio", ())] == 0.25
    assert s[("sloserve_chunk_tokens", ())] == 2048
    assert s[("sloserve_knobs_revision", ())] == 1234
    assert s[("sloserve_preemptions_total", (("mode", "recompute"),))] == 3
    assert s[("sloserve_engine_info", (("mode", "vllm"),))] == 1
