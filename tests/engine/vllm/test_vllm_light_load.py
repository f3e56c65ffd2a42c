"""At light load the plan must not hold a new prompt back: first token as soon as stock.

On the H200, `sloserve`'s TTFT p50 at 13 req/s was ~8 ms (about one step) above stock's
(docs/benchmarks.md, "Simulator error vs every GPU run"). This pins down that the plan,
inside vLLM's real EngineCore with asynchronous scheduling, adds no step by itself.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from vllm_adapter_helpers import real_engine_core

from sloserve_engine.bench.cpu_driver import (
    CpuEngineSpec,
    make_request,
)

pytestmark = pytest.mark.vllm

SCHEDULER = {
    "stock": "sloserve_engine.vllm.scheduler.StockTimingScheduler",
    "sloserve": "sloserve_engine.vllm.scheduler.SLOScheduler",
}


def steps_to_first_token(model_dir: Path, scheduler: str, requests: int = 60) -> list[int]:
    """Requests arrive about every 8 steps (light load); count steps until each first token."""
    spec = CpuEngineSpec(
        model_dir=model_dir,
        num_blocks=6093,
        max_num_seqs=256,
        max_num_batched_tokens=8192,
        max_model_len=8192,
        async_scheduling=True,
        additional_config={"sloserve": {"knobs": {"policy": "sloserve"}}},
    )
    core = real_engine_core(spec, SCHEDULER[scheduler])
    rng = random.Random(0)
    added: dict[str, int] = {}
    first: dict[str, int] = {}
    step = 0
    while len(added) < requests or core.scheduler.has_requests() or core.batch_queue:
        if len(added) < requests and rng.random() < 0.12:
            rid = f"r{len(added)}"
            core.add_request(make_request(rid, rng.randint(200, 2000), rng.randint(20, 120), 16))
            added[rid] = step
        outputs, _ = core.step_with_batch_queue()
        step += 1
        for eco in (outputs or {}).values():
            for out in eco.outputs:
                if out.new_token_ids:
                    first.setdefault(out.request_id, step)
    return [first[rid] - added[rid] for rid in added]


def test_sloserve_starts_new_prompts_as_soon_as_stock(tiny_model_dir: Path) -> None:
    stock = steps_to_first_token(tiny_model_dir, "stock")
    ours = steps_to_first_token(tiny_model_dir, "sloserve")
    assert len(ours) == len(stock) == 60
    assert ours == stock
