"""Swap preemption through vLLM's real CPU KV offload connector (scheduler side).

The connector's worker side needs a GPU, so its completions are FAKED by the
CPU driver (every store/load completes within the step that issued it); the
scheduler-side ``OffloadingConnector``, its lookups and vLLM's async-load
states (``WAITING_FOR_REMOTE_KVS``) are real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from test_vllm_plan_mapping import TWO_GROWING, ScriptedPolicy
from vllm_adapter_helpers import Engine, assert_all_done, make_engine, pressure_workload

from sloserve_engine.policy.views import PreemptionMode
from sloserve_engine.vllm.scheduler import SLOScheduler, SLOSyncScheduler

pytestmark = pytest.mark.vllm


def run(model: Path, mode: PreemptionMode, asynchronous: bool, arrivals: list) -> Engine:  # type: ignore[type-arg]
    cls = SLOScheduler if asynchronous else SLOSyncScheduler
    engine = make_engine(cls, model, asynchronous=asynchronous, num_blocks=13, kv_offload=True)
    engine.scheduler.set_policy(ScriptedPolicy(mode=mode))
    engine.run(arrivals)
    assert_all_done(engine.driver, engine.spec, arrivals)
    return engine


def scheduled_tokens(engine: Engine) -> int:
    return sum(sum(r.num_scheduled_tokens.values()) for r in engine.driver.records)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async-depth2"])
def test_swap_reloads_kv_that_recompute_recomputes(
    tiny_model_dir: Path, asynchronous: bool
) -> None:
    swap = run(tiny_model_dir, PreemptionMode.SWAP, asynchronous, TWO_GROWING)
    recompute = run(tiny_model_dir, PreemptionMode.RECOMPUTE, asynchronous, TWO_GROWING)
    swap_stats = swap.scheduler.sloserve_stats
    recompute_stats = recompute.scheduler.sloserve_stats
    assert swap_stats.preemptions[PreemptionMode.SWAP] > 0 and swap_stats.swap_unavailable == 0
    assert recompute_stats.preemptions[PreemptionMode.RECOMPUTE] > 0
    assert swap.scheduler.connector is not None
    # A recomputed victim prefills its whole context again; a swapped one loads it back.
    assert scheduled_tokens(swap) < scheduled_tokens(recompute)


def test_swap_under_pressure_keeps_every_invariant(tiny_model_dir: Path) -> None:
    workload = pressure_workload()
    engine = make_engine(
        SLOScheduler, tiny_model_dir, asynchronous=True, kv_offload=True, knobs={"policy": "vllm"}
    )
    engine.scheduler.set_policy(ScriptedPolicy(mode=PreemptionMode.SWAP))
    engine.run(workload)
    assert_all_done(engine.driver, engine.spec, workload)
    assert engine.scheduler.sloserve_stats.preemptions[PreemptionMode.SWAP] > 0
