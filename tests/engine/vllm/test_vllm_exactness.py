"""With the ``vllm`` policy, SLOScheduler makes exactly stock vLLM 0.26.0's decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.scheduler import Scheduler
from vllm_adapter_helpers import (
    Arrival,
    Engine,
    assert_all_done,
    make_engine,
    pressure_workload,
)

from sloserve_engine.vllm.scheduler import SLOScheduler, SLOSyncScheduler

pytestmark = pytest.mark.vllm


@pytest.mark.parametrize(
    ("stock_cls", "ours_cls", "asynchronous"),
    [
        pytest.param(Scheduler, SLOSyncScheduler, False, id="sync"),
        pytest.param(AsyncScheduler, SLOScheduler, True, id="async-depth2"),
    ],
)
def test_vllm_policy_is_stock_vllm_step_by_step(
    tiny_model_dir: Path, stock_cls: type, ours_cls: type, asynchronous: bool
) -> None:
    workload = pressure_workload()
    stock = make_engine(stock_cls, tiny_model_dir, asynchronous=asynchronous)
    ours = make_engine(
        ours_cls, tiny_model_dir, asynchronous=asynchronous, knobs={"policy": "vllm"}
    )
    stock.run(workload)
    ours.run(workload)
    assert ours.driver.records == stock.driver.records
    assert_all_done(ours.driver, ours.spec, workload)
    preempted = sum(len(r.preempted_request_ids) for r in stock.driver.records)
    chunked = any(
        0 < n < 60 and rid in r.new_request_ids
        for r in stock.driver.records
        for rid, n in r.num_scheduled_tokens.items()
    )
    assert preempted > 0, "the workload must exercise preemption"
    assert chunked, "the workload must exercise chunked prefill"
    assert ours.scheduler.sloserve_stats.preemptions["recompute"] == preempted


def shared_prefix_workload() -> list[Arrival]:
    """The pressure workload, with pairs of requests sharing their prompt (prefix cache hits)."""
    return [
        Arrival(a.request_id, a.prompt_tokens, a.output_tokens, a.step, a.extra_args, f"p{i // 2}")
        for i, a in enumerate(pressure_workload())
    ]


@pytest.mark.parametrize(
    ("stock_cls", "ours_cls", "asynchronous"),
    [
        pytest.param(Scheduler, SLOSyncScheduler, False, id="sync"),
        pytest.param(AsyncScheduler, SLOScheduler, True, id="async-depth2"),
    ],
)
def test_exact_with_prefix_caching(
    tiny_model_dir: Path, stock_cls: type, ours_cls: type, asynchronous: bool
) -> None:
    workload = shared_prefix_workload()
    shape = {"asynchronous": asynchronous, "prefix_caching": True, "num_blocks": 30}
    stock = make_engine(stock_cls, tiny_model_dir, **shape)  # type: ignore[arg-type]
    ours = make_engine(ours_cls, tiny_model_dir, knobs={"policy": "vllm"}, **shape)  # type: ignore[arg-type]
    stock.run(workload)
    ours.run(workload)
    assert ours.driver.records == stock.driver.records
    assert_all_done(ours.driver, ours.spec, workload)
    assert any(r.preempted_request_ids for r in stock.driver.records)
    uncached = make_engine(stock_cls, tiny_model_dir, **{**shape, "prefix_caching": False})  # type: ignore[arg-type]
    uncached.run(workload)

    def computed(engine: Engine) -> int:
        return sum(sum(r.num_scheduled_tokens.values()) for r in engine.driver.records)

    assert computed(ours) < computed(uncached), "the workload must hit the prefix cache"
