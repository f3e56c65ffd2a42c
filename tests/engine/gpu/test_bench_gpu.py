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

from sloserve_engine.sim.metrics import SLO
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
    metrics = bench_gpu.summarize_records([fast, slow], SLO(ttft_s=1.0, tbt_s=0.1))
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
    bench_gpu.write_requests_csv(path, [fast, slow])
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
