"""Workloads, the capacity bound, metrics and the ``sloserve bench`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sloserve_engine.bench.capacity import capacity_bound
from sloserve_engine.bench.cli import add_arguments, run
from sloserve_engine.bench.sweep import aggregate, max_rates
from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy.vllm_fcfs import VllmFcfsPolicy
from sloserve_engine.sim import SimConfig, load_profile
from sloserve_engine.sim.metrics import RequestTiming, summarize
from sloserve_engine.sim.runner import replay
from sloserve_engine.sim.workload import WorkloadSpec, build_workload


def test_azure_conv_matches_the_gpu_baseline_replay() -> None:
    reqs = build_workload(WorkloadSpec(rate=16))
    assert len(reqs) == 1500
    # gpu/README.md baseline: req_on16.csv starts 0.0000 / 1.3068 with (374, 44), (396, 109)
    assert reqs[1].arrival == pytest.approx(1.3068, abs=1e-4)
    assert (reqs[0].prompt_tokens, reqs[0].output_tokens) == (374, 44)
    assert reqs[-1].arrival == pytest.approx(1500 / 16)
    assert max(r.prompt_tokens for r in reqs) <= 7000
    assert max(r.output_tokens for r in reqs) <= 1000


@pytest.mark.parametrize("arrival", ["poisson", "gamma"])
def test_synthetic_arrivals_hit_the_rate(arrival: str) -> None:
    spec = WorkloadSpec(trace="sharegpt", requests=4000, rate=8, arrival=arrival, gamma_cv=3)  # type: ignore[arg-type]
    t = np.array([r.arrival for r in build_workload(spec)])
    gaps = np.diff(t)
    assert 1 / gaps.mean() == pytest.approx(8, rel=0.1)
    cv = gaps.std() / gaps.mean()
    assert cv == pytest.approx(1.0 if arrival == "poisson" else 3.0, rel=0.2)


def test_bad_workloads_are_rejected() -> None:
    with pytest.raises(ValueError, match="no timestamps"):
        WorkloadSpec(trace="sharegpt", arrival="trace")
    with pytest.raises(ValueError, match="unknown trace"):
        WorkloadSpec(trace="nope")


def test_capacity_bound_is_above_what_the_simulator_sustains() -> None:
    profile = load_profile()
    for scheduling in ("sync", "async"):
        config = SimConfig(scheduling=scheduling)
        bound = capacity_bound(build_workload(WorkloadSpec(rate=40)), profile, config)
        result = replay(
            build_workload(WorkloadSpec(rate=40, requests=600)),
            VllmFcfsPolicy(),
            profile,
            config,
            SLO(),
        )
        served = result.metrics.completed / result.metrics.makespan
        assert served < bound.rate < 1.6 * served


def test_attainment_counts_ttft_and_mean_tpot() -> None:
    timings = [
        RequestTiming(0.0, 11, first_token=0.5, finish=0.5 + 10 * 0.09, tokens_seen=11),  # attains
        RequestTiming(0.0, 11, first_token=1.5, finish=1.6, tokens_seen=11),  # TTFT too long
        RequestTiming(0.0, 11, first_token=0.1, finish=1.2, tokens_seen=11),  # TPOT too long
        RequestTiming(0.0, 5),  # never finished: counts against attainment
        RequestTiming(0.0, 9, first_token=0.1, finish=0.3, tokens_seen=4),  # cut off: a miss
    ]
    m = summarize(timings, np.array([0.05, 0.2]), SLO(ttft_ms=1000, tbt_ms=100))
    assert m.completed == 3 and m.requests == 5
    assert m.slo_attainment == pytest.approx(0.2)
    assert m.stall_rate == pytest.approx(0.5)
    assert m.drain_s == float("inf")  # not everything finished
    assert m.ttft_p99 == float("inf")  # the request that never started waits forever


def test_strict_attainment_and_per_class_ratios() -> None:
    gold = SLO(slo_class="interactive", ttft_ms=250, tbt_ms=50)
    timings = [
        RequestTiming(0.0, 11, first_token=0.5, finish=1.0, tokens_seen=11, max_gap=0.05),
        RequestTiming(1.0, 11, first_token=1.5, finish=2.0, tokens_seen=11, max_gap=0.3),  # froze
        RequestTiming(2.0, 11, first_token=2.1, finish=2.6, tokens_seen=11, slo=gold),
        RequestTiming(3.0, 11, first_token=3.3, finish=3.8, tokens_seen=11, slo=gold),  # late
    ]
    m = summarize(timings, np.array([0.05]), SLO(ttft_ms=1000, tbt_ms=100), stall_bound_s=0.2)
    assert (m.slo_attainment, m.strict_attainment) == (0.75, 0.5)
    assert m.drain_s == pytest.approx(0.8)
    assert set(m.class_attainment) == {"interactive"}  # the others carry no SLO of their own
    assert m.class_attainment["interactive"].standard == 0.5


def test_bench_sim_writes_json_and_plots(tmp_path: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "out.json"
    args = parser.parse_args(
        [
            "sim",
            "--requests",
            "80",
            "--rates",
            "4,400",
            "--kv-tokens",
            "8000",
            "--policies",
            "vllm",
            "--json",
            str(out),
            "--plots",
            str(tmp_path),
        ]
    )
    assert run(args) == 0
    report = json.loads(out.read_text())
    keys = {
        "policy",
        "rate",
        "requests",
        "completed",
        "ttft_p50",
        "ttft_p90",
        "ttft_p99",
        "tbt_p50",
        "tbt_p99",
        "slo_attainment",
        "preemptions",
    }
    assert all(keys <= set(r) for r in report["runs"])
    assert [r["completed"] for r in report["runs"]] == [80, 80]
    assert all(0 <= r["strict_attainment"] <= r["slo_attainment"] for r in report["runs"])
    assert report["max_rate"]["vllm"] == 4.0
    assert report["capacity_bound"] > 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "sim_azure-conv_async_attainment.png",
        "sim_azure-conv_async_kv.png",
        "sim_azure-conv_async_latency.png",
    ]


def test_bench_rejects_unknown_policies() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["sim", "--policies", "fastest"])


def test_max_rate_is_the_highest_attaining_rate() -> None:
    rows = [("a", 10, 0.95), ("a", 16, 0.91), ("a", 22, 0.2), ("b", 10, 0.5)]
    runs = [{"policy": p, "rate": r, "slo_attainment": a} for p, r, a in rows]
    assert max_rates(runs) == {"a": 16, "b": None}


def test_max_rate_cannot_be_gamed_by_starving_requests_until_arrivals_stop() -> None:
    def row(rate: float, att: float, drain: float, p99: float, segment: int = 0) -> dict[str, Any]:
        return {
            "policy": "a",
            "rate": rate,
            "slo_attainment": att,
            "drain_s": drain,
            "ttft_p99": p99,
            "segment": segment,
        }

    # 16: fine. 18: 95 % but the last requests waited 60 s after arrivals stopped. 20: 93 %
    # with a bounded drain, but p99 TTFT of 25 s (requests deferred for the whole trace).
    runs = [row(16, 0.95, 3.0, 2.0), row(18, 0.95, 60.0, 4.0), row(20, 0.93, 5.0, 25.0)]
    assert max_rates(runs) == {"a": 16}
    # Mean over segments decides, and every segment must pass the drain rule.
    runs = [row(16, 0.95, 3.0, 2.0), row(16, 0.86, 3.0, 2.0, segment=1)]
    assert max_rates(runs) == {"a": 16}  # mean 90.5 %
    runs = [row(16, 0.99, 3.0, 2.0), row(16, 0.99, float("inf"), 2.0, segment=1)]
    assert max_rates(runs) == {"a": None}


def test_aggregate_reports_mean_and_spread_over_segments() -> None:
    runs = [
        {"policy": "a", "rate": 16, "requests": 10, "slo_attainment": x, "strict_attainment": y}
        for x, y in ((0.9, 0.8), (1.0, 0.9))
    ]
    (row,) = aggregate(runs)
    assert row["slices"] == 2 and row["requests"] == 20
    assert row["slo_attainment"] == pytest.approx(0.95)
    assert row["slo_attainment_std"] == pytest.approx(0.0707, abs=1e-4)
    assert (row["strict_attainment_min"], row["strict_attainment_max"]) == (0.8, 0.9)


def test_bench_reports_bad_input_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["sim", "--trace", "sharegpt", "--arrival", "trace"])
    assert run(args) == 2
    assert "no timestamps" in capsys.readouterr().out


def test_bench_sim_segments_and_mixed_slo_report_per_slice_and_per_class(tmp_path: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "out.json"
    args = parser.parse_args(
        "sim --requests 60 --rates 8 --kv-tokens 8000 --policies vllm,vllm-tuned,sloserve "
        f"--segments 0,2 --workload mixed-slo --mix 0.5 --json {out} "
        f"--markdown {tmp_path / 'out.md'}".split()
    )
    assert run(args) == 0
    report = json.loads(out.read_text())
    assert [(r["segment"], r["policy"]) for r in report["runs"]][:3] == [
        (0, "vllm"),
        (0, "vllm-tuned"),
        (0, "sloserve"),
    ]
    assert {r["workload"] for r in report["runs"]} == {"azure-conv-mixed0.5"}
    summary = next(s for s in report["summary"] if s["policy"] == "vllm")
    text = (tmp_path / "out.md").read_text()
    assert "| azure-conv-mixed0.5 | vllm-tuned | 8 | 2 |" in text
    assert "| strict |" in text  # sloserve against the better baseline
    assert summary["slices"] == 2
    assert set(summary["class_attainment"]) == {"interactive", "batch"}
    assert report["config"]["segments"] == [0, 2]


def test_segments_are_disjoint_slices_and_segment_zero_is_the_tuning_set() -> None:
    tuning = build_workload(WorkloadSpec(rate=16))
    again = build_workload(WorkloadSpec(rate=16, segment=0))
    assert tuning == again
    held_out = build_workload(WorkloadSpec(rate=16, segment=3))
    rows = build_workload(WorkloadSpec(rate=16, requests=6000))
    shapes = [(r.prompt_tokens, r.output_tokens) for r in rows[4500:]]
    assert [(r.prompt_tokens, r.output_tokens) for r in held_out] == shapes
    assert held_out[0].arrival == 0.0
    assert held_out[-1].arrival == pytest.approx(1500 / 16)  # each slice scaled to the rate
    with pytest.raises(ValueError, match="segment 13"):
        build_workload(WorkloadSpec(trace="azure-conv", segment=13))  # 19,366 rows


def test_length_only_traces_draw_each_segment_independently() -> None:
    a = build_workload(WorkloadSpec(trace="sharegpt", arrival="gamma", requests=200))
    b = build_workload(WorkloadSpec(trace="sharegpt", arrival="gamma", requests=200, segment=1))
    assert [r.prompt_tokens for r in a] != [r.prompt_tokens for r in b]
    assert [r.arrival for r in a] != [r.arrival for r in b]


def test_mixed_slo_workload_assigns_classes_by_the_mix() -> None:
    reqs = build_workload(WorkloadSpec(rate=16, requests=1500, slo_mix=0.3))
    share = sum(r.slo is not None and r.slo.slo_class == "interactive" for r in reqs) / 1500
    assert share == pytest.approx(0.3, abs=0.04)
    assert {r.slo.ttft_s for r in reqs if r.slo is not None} == {0.25, 5.0}
    plain = build_workload(WorkloadSpec(rate=16, requests=1500))
    assert [(r.prompt_tokens, r.arrival) for r in plain] == [
        (r.prompt_tokens, r.arrival) for r in reqs
    ]
    with pytest.raises(ValueError, match="slo_mix"):
        WorkloadSpec(slo_mix=1.5)


def test_tuned_stock_runs_the_vllm_policy_with_the_tuned_engine_settings() -> None:
    from sloserve_engine.bench.sweep import TUNED_STOCK, TUNED_STOCK_NAME, engine_for

    base = SimConfig()
    name, config = engine_for(TUNED_STOCK_NAME, base)
    assert name == "vllm"
    assert config.max_num_batched_tokens == TUNED_STOCK["max_num_batched_tokens"]
    assert config.long_prefill_token_threshold == TUNED_STOCK["long_prefill_token_threshold"]
    assert engine_for("sloserve", base) == ("sloserve", base)
