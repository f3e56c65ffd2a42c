"""The GPU replay harness, exercised on CPU.

The engine here is a stand-in (labelled as such): vLLM's engine cannot run
without a GPU, so ``TokenClock`` yields one token per request every 5 ms. What
is tested is the harness's own logic: arrival pacing, token timestamps, the
CSV and JSON outputs in the simulator's format.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from sloserve_engine.contract.slo import SLO
from sloserve_engine.sim.workload import TraceRequest

bench_gpu = pytest.importorskip("sloserve_engine.bench.gpu")
pytest.importorskip("vllm")


class TokenClock:
    """Stand-in for AsyncLLM.generate: one token every ``step_s`` seconds."""

    def __init__(self, step_s: float = 0.005) -> None:
        self.step_s = step_s
        self.seen: list[str] = []

    async def generate(
        self, prompt: object, params: object, request_id: str
    ) -> AsyncIterator[SimpleNamespace]:
        self.seen.append(request_id)
        for _ in range(params.max_tokens):  # type: ignore[attr-defined]
            await asyncio.sleep(self.step_s)
            yield SimpleNamespace(outputs=[SimpleNamespace(token_ids=[7])])


def test_replay_paces_arrivals_and_timestamps_every_token() -> None:
    trace = [
        TraceRequest(f"r{i}", arrival=0.02 * i, prompt_tokens=8, output_tokens=3) for i in range(5)
    ]
    engine = TokenClock()
    records, start, end = asyncio.run(bench_gpu.replay(engine, trace, 1000.0, 100.0, seed=1))
    assert sorted(engine.seen) == [f"r{i}" for i in range(5)]
    assert end > start
    for rec, req in zip(records, trace, strict=True):
        assert len(rec.token_times) == req.output_tokens
        assert rec.arrival >= req.arrival - 1e-3, "a request was submitted before it was due"
        assert rec.token_times == sorted(rec.token_times)
        assert 0.004 < rec.ttft < 0.5


def test_summary_uses_simulator_metrics_and_json_format(tmp_path: Path) -> None:
    fast = bench_gpu.RequestRecord(arrival=0.0, n_in=10, n_out=3, token_times=[0.1, 0.15, 0.2])
    slow = bench_gpu.RequestRecord(arrival=0.0, n_in=10, n_out=2, token_times=[2.0, 2.05])
    metrics = bench_gpu.summarize_records([fast, slow], SLO(ttft_ms=1000, tbt_ms=100))
    assert metrics.slo_attainment == pytest.approx(0.5)
    row = bench_gpu.summary_row("stock", 16.0, metrics)
    assert row["policy"] == "vllm"
    for key in (
        "rate",
        "requests",
        "completed",
        "ttft_p50",
        "ttft_p90",
        "ttft_p99",
        "tbt_p50",
        "tbt_p99",
        "slo_attainment",
    ):
        assert key in row
    path = tmp_path / "req.csv"
    bench_gpu.write_requests_csv(path, [fast, slow], SLO())
    rows = list(csv.DictReader(path.open()))
    assert [float(r["ttft"]) for r in rows] == pytest.approx([0.1, 2.0])
    assert [int(r["n_tokens_seen"]) for r in rows] == [3, 2]


def test_engine_setup_files(tmp_path: Path) -> None:
    model = bench_gpu.write_model_dir(tmp_path / "m")
    config = json.loads((model / "config.json").read_text())
    assert (config["num_hidden_layers"], config["num_key_value_heads"]) == (32, 8)
    stock = bench_gpu.engine_env("stock", tmp_path / "s.csv", tmp_path / "k.json")
    ours = bench_gpu.engine_env("sloserve", tmp_path / "s.csv", tmp_path / "k.json")
    assert "SLOSERVE_POLICY" not in stock and ours["SLOSERVE_POLICY"] == "sloserve"
    assert bench_gpu.scheduler_cls("stock").endswith("StockTimingScheduler")
    assert bench_gpu.scheduler_cls("sloserve").endswith(".SLOScheduler")


def test_run_label_names_a_configuration_and_rejects_underscores() -> None:
    assert bench_gpu.run_label("sloserve", "") == "sloserve"
    assert bench_gpu.run_label("sloserve", "r0.05") == "sloserve-r0.05"
    with pytest.raises(ValueError, match="use '-'"):
        bench_gpu.run_label("vllm", "swap_32")


def test_offloading_args_attach_the_cpu_offload_connector_with_output_kv() -> None:
    from vllm.engine.arg_utils import AsyncEngineArgs

    assert bench_gpu.offloading_args(None) == {}
    extra = bench_gpu.offloading_args(32.0)
    args = AsyncEngineArgs(model="m", **extra)  # type: ignore[arg-type]
    assert args.kv_offloading_size == 32.0
    assert args.kv_transfer_config.kv_connector_extra_config == {"offload_prompt_only": False}


def test_cli_takes_tag_and_offloading(tmp_path: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    bench_gpu.add_arguments(parser)
    args = parser.parse_args(
        [
            "--schedulers",
            "vllm",
            "--tag",
            "swap",
            "--kv-offloading-gib",
            "32",
            "--out",
            str(tmp_path),
        ]
    )
    assert (args.tag, args.kv_offloading_gib, args.rates) == ("swap", 32.0, [10, 13, 16, 19, 22])


class SlowClock(TokenClock):
    """Stand-in that never finishes a long request: one token per 50 ms."""

    def __init__(self) -> None:
        super().__init__(step_s=0.05)
        self.cancelled: list[str] = []

    async def generate(
        self, prompt: object, params: object, request_id: str
    ) -> AsyncIterator[SimpleNamespace]:
        try:
            async for out in super().generate(prompt, params, request_id):
                yield out
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled.append(request_id)
            raise


def test_requests_still_running_after_the_drain_bound_are_cut_off_and_missed() -> None:
    trace = [
        TraceRequest("a", arrival=0.0, prompt_tokens=8, output_tokens=2),
        TraceRequest("b", arrival=0.01, prompt_tokens=8, output_tokens=400),  # 20 s of tokens
    ]
    engine = SlowClock()
    records, start, end = asyncio.run(
        bench_gpu.replay(engine, trace, 1000.0, 100.0, seed=1, drain_s=0.3)
    )
    assert end - start < 2.0, "the replay waited for the endless request"
    assert engine.cancelled == ["r1"]
    m = bench_gpu.summarize_records(records, SLO(ttft_ms=1000, tbt_ms=100))
    assert (m.completed, m.requests) == (1, 2)
    assert m.slo_attainment == m.strict_attainment == 0.5  # the cut-off request is a miss
    assert m.drain_s == float("inf")


def test_mixed_slo_requests_carry_their_class_to_the_engine_and_the_csv(tmp_path: Path) -> None:
    from sloserve_engine.sim.workload import SLO_CLASSES

    seen: list[dict[str, object]] = []

    class Recording(TokenClock):
        async def generate(
            self, prompt: object, params: object, request_id: str
        ) -> AsyncIterator[SimpleNamespace]:
            seen.append(params.extra_args)  # type: ignore[attr-defined]
            async for out in super().generate(prompt, params, request_id):
                yield out

    gold = SLO_CLASSES["interactive"]
    trace = [
        TraceRequest("a", 0.0, 8, 3, slo=gold),
        TraceRequest("b", 0.0, 8, 3),
    ]
    records, _, _ = asyncio.run(bench_gpu.replay(Recording(), trace, 1000.0, 100.0, seed=1))
    assert {"slo_class": "interactive", "ttft_ms": 250.0, "tbt_ms": 50.0} in seen
    assert {"ttft_ms": 1000.0, "tbt_ms": 100.0} in seen
    path = tmp_path / "req.csv"
    bench_gpu.write_requests_csv(path, records, SLO())
    rows = list(csv.DictReader(path.open()))
    assert [(r["slo_class"], r["ttft_slo_s"], r["tbt_slo_s"]) for r in rows] == [
        ("interactive", "0.25", "0.05"),
        ("standard", "1", "0.1"),
    ]
    m = bench_gpu.summarize_records(records, SLO())
    assert set(m.class_attainment) == {"interactive"}


def test_cli_takes_workload_slices_and_stock_chunking_knobs(tmp_path: Path) -> None:
    import argparse

    from vllm.engine.arg_utils import AsyncEngineArgs

    parser = argparse.ArgumentParser()
    bench_gpu.add_arguments(parser)
    args = parser.parse_args(
        "--schedulers stock --tag tuned --max-num-batched-tokens 2048 "
        "--long-prefill-token-threshold 512 --segments 1,2 --workload mixed-slo --mix 0.3 "
        f"--arrivals gamma --cv 2 --trace sharegpt --rates 16 --out {tmp_path}".split()
    )
    specs = bench_gpu.workload_specs(args, 16.0)
    assert [(s.segment, s.slo_mix, s.arrival, s.gamma_cv) for s in specs] == [
        (1, 0.3, "gamma", 2.0),
        (2, 0.3, "gamma", 2.0),
    ]
    assert bench_gpu.run_label("stock", args.tag) == "stock-tuned"
    assert bench_gpu.policy_of("stock-tuned") == "vllm-tuned"
    ea = bench_gpu.engine_args(args, "stock", tmp_path)
    assert isinstance(ea, AsyncEngineArgs)
    assert (ea.max_num_batched_tokens, ea.long_prefill_token_threshold) == (2048, 512)
    assert bench_gpu.request_file("stock-tuned", specs[0]) == (
        "req_stock-tuned_16_sharegpt-gamma2-mixed0.3_g1_s0.csv"
    )
