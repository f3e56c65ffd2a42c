"""vLLM's real EngineCore runs the adapter, loaded by name, with only the model faked.

``EngineCore`` computes the KV cache from the executor, builds the scheduler
from ``scheduler_cls`` (the string ``--scheduler-cls`` passes), and drives it
with its own ``step()`` (sync) or ``step_with_batch_queue()`` (async, depth 2).
The executor is ``cpu_driver.FakeExecutor``: it samples one token whenever a
chunk completes a request's known tokens, as a model runner would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from vllm.v1.engine.core import EngineCore
from vllm_adapter_helpers import pressure_workload, real_engine_core

from sloserve_engine.bench.cpu_driver import (
    FAKE_TOKEN_BASE,
    CpuEngineSpec,
    make_request,
)
from sloserve_engine.contract.knobs import Knobs

pytestmark = pytest.mark.vllm

SCHEDULERS = {
    False: "sloserve_engine.vllm.scheduler.SLOSyncScheduler",
    True: "sloserve_engine.vllm.scheduler.SLOScheduler",
}


def engine_core(model_dir: Path, asynchronous: bool, policy: str) -> EngineCore:
    spec = CpuEngineSpec(
        model_dir=model_dir,
        num_blocks=41,
        max_num_seqs=6,
        max_num_batched_tokens=64,
        max_model_len=512,
        async_scheduling=asynchronous,
        additional_config={"sloserve": {"knobs": {"policy": policy}}},
    )
    return real_engine_core(spec, SCHEDULERS[asynchronous])


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async-depth2"])
@pytest.mark.parametrize("policy", ["vllm", "sloserve"])
def test_engine_core_serves_every_request_exactly(
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    asynchronous: bool,
    policy: str,
) -> None:
    knobs_file = tmp_path / "knobs.json"
    monkeypatch.setenv("SLOSERVE_KNOBS_PATH", str(knobs_file))
    core = engine_core(tiny_model_dir, asynchronous, policy)
    sched: Any = core.scheduler
    assert type(sched).__name__ == SCHEDULERS[asynchronous].rsplit(".", 1)[1]
    assert core.batch_queue_size == (2 if asynchronous else 1)
    workload = pressure_workload()
    for a in workload:
        core.add_request(make_request(a.request_id, a.prompt_tokens, a.output_tokens, 16))
    emitted: dict[str, list[int]] = {}
    later = Knobs(policy=policy, chunk_max_tokens=128)
    steps = 0
    while core.scheduler.has_requests() or core.batch_queue:
        if steps == 10:
            knobs_file.write_text(later.model_dump_json(by_alias=True))
        outputs, _ = core.step_with_batch_queue() if core.batch_queue is not None else core.step()
        for batch in (outputs or {}).values():
            for out in batch.outputs:
                emitted.setdefault(out.request_id, []).extend(out.new_token_ids)
        steps += 1
        if steps == 12:
            applied = json.loads(knobs_file.with_name("knobs.json.applied").read_text())
            assert applied["revision"] == later.revision()
            assert core.sloserve_get_knobs()["revision"] == later.revision()  # type: ignore[attr-defined]
        assert steps < 2000
    for a in workload:
        assert emitted[a.request_id] == [FAKE_TOKEN_BASE + i for i in range(a.output_tokens)]
    assert sched.kv_cache_manager.block_pool.get_num_free_blocks() == 40
    assert sched.sloserve_stats.finished == len(workload)
    assert sched.sloserve_stats.preemptions["recompute"] > 0
    core.shutdown()
