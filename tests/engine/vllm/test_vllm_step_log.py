"""The step CSV (SLOSERVE_STEP_LOG) agrees with what the scheduler actually scheduled."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from vllm_adapter_helpers import make_engine, pressure_workload

from sloserve_engine.policy.costmodel import attention_pairs
from sloserve_engine.vllm.scheduler import (
    SLOScheduler,
    SLOSyncScheduler,
    StockTimingScheduler,
    StockTimingSyncScheduler,
)
from sloserve_engine.vllm.steplog import COLUMNS

pytestmark = pytest.mark.vllm


@pytest.mark.parametrize(
    ("cls", "asynchronous"),
    [
        pytest.param(StockTimingSyncScheduler, False, id="stock-sync"),
        pytest.param(StockTimingScheduler, True, id="stock-async"),
        pytest.param(SLOSyncScheduler, False, id="sloserve-sync"),
        pytest.param(SLOScheduler, True, id="sloserve-async"),
    ],
)
def test_one_row_per_scheduled_step(
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cls: type,
    asynchronous: bool,
) -> None:
    log = tmp_path / "steps.csv"
    monkeypatch.setenv("SLOSERVE_STEP_LOG", str(log))
    engine = make_engine(cls, tiny_model_dir, asynchronous=asynchronous, knobs={"policy": "vllm"})
    engine.run(pressure_workload())
    with log.open() as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    steps = [r for r in engine.driver.records if r.num_scheduled_tokens]
    assert len(rows) == len(steps)
    for row, step in zip(rows, steps, strict=True):
        assert int(row["n_reqs"]) == len(step.num_scheduled_tokens)
        assert int(row["n_prefill_reqs"]) + int(row["n_decode"]) == int(row["n_reqs"])
        scheduled = sum(step.num_scheduled_tokens.values())
        assert int(row["prefill_tokens"]) + int(row["n_decode"]) == scheduled
        assert float(row["t_update"]) >= float(row["t_sched"])
        assert 0.0 <= float(row["kv_usage"]) <= 1.0 and float(row["sched_s"]) > 0
        assert int(row["plan_chunk_cap"]) >= 0 and int(row["plan_admits"]) >= 0
        assert scheduled <= int(row["plan_budget"]) <= 64, "a step beyond its plan's budget"
    preempted = sum(len(s.preempted_request_ids) for s in steps)
    assert int(rows[-1]["preempt_total"]) == preempted > 0
    assert int(rows[0]["prefill_ctx_sum"]) == int(rows[0]["prefill_tokens"]) == 64
    assert int(rows[0]["prefill_attn_sum"]) == attention_pairs(64, 0)  # one fresh chunk


def test_plan_columns_show_what_the_policy_allowed(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = {}
    for name, cls, knobs in (
        ("stock", StockTimingScheduler, {"policy": "vllm"}),
        ("ours", SLOScheduler, {"policy": "sloserve", "chunkMinTokens": 16, "chunkMaxTokens": 32}),
    ):
        log = tmp_path / f"{name}.csv"
        monkeypatch.setenv("SLOSERVE_STEP_LOG", str(log))
        make_engine(cls, tiny_model_dir, asynchronous=True, knobs=knobs).run(pressure_workload())
        with log.open() as f:
            logs[name] = list(csv.DictReader(f))
    assert {int(r["plan_budget"]) for r in logs["stock"]} == {64}
    assert {int(r["plan_chunk_cap"]) for r in logs["stock"]} == {0}
    assert max(int(r["plan_budget"]) for r in logs["ours"]) <= 32
    assert all(0 < int(r["plan_chunk_cap"]) <= 32 for r in logs["ours"])
