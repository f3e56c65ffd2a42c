"""Client aborts (between steps, as EngineCore delivers them) leave nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from prometheus_client import CollectorRegistry
from vllm.v1.request import RequestStatus
from vllm_adapter_helpers import FAKE_TOKEN_BASE, make_engine, pressure_workload

from sloserve_engine.contract.knobs import POLICY_NAMES
from sloserve_engine.telemetry.metrics import EngineMetrics
from sloserve_engine.vllm.scheduler import SLOScheduler

pytestmark = pytest.mark.vllm


@pytest.mark.parametrize("policy", ["vllm", POLICY_NAMES[-1]])
def test_aborted_requests_free_everything_and_teach_nothing(
    tiny_model_dir: Path, policy: str
) -> None:
    engine = make_engine(SLOScheduler, tiny_model_dir, asynchronous=True, knobs={"policy": policy})
    sched = engine.scheduler
    registry = CollectorRegistry()
    sched.use_metrics(EngineMetrics(registry, mode="vllm"))
    workload = pressure_workload()
    aborted: list[str] = []
    states: set[RequestStatus] = set()

    def abort(step: int) -> None:
        if step in (12, 30):
            victims = [*sched.running[:1], *list(sched.waiting)[:1]]
            states.update(r.status for r in victims)
            sched.finish_requests([r.request_id for r in victims], RequestStatus.FINISHED_ABORTED)
            aborted.extend(r.request_id for r in victims)

    engine.run(workload, before_step=abort)
    assert {RequestStatus.RUNNING, RequestStatus.WAITING} <= states, "aborted in both queues"
    stats = sched.sloserve_stats
    assert stats.aborted == len(aborted) and stats.finished == len(workload) - len(aborted)

    def outcomes(outcome: str) -> float:
        return sum(
            registry.get_sample_value(
                "sloserve_requests_total", {"slo_class": c, "outcome": outcome}
            )
            or 0.0
            for c in ("interactive", "batch", "standard", "other")
        )

    assert outcomes("aborted") == len(aborted)  # counted, with the outcome label
    assert outcomes("finished") == len(workload) - len(aborted)
    window = registry.get_sample_value("sloserve_slo_window_requests")
    assert window is not None and window >= len(aborted)  # aborts are misses in the window
    assert not sched.requests and not sched._sl_meta and not sched._sl_recompute_ids
    assert sched.kv_cache_manager.block_pool.get_num_free_blocks() == engine.spec.num_blocks - 1
    for a in workload:
        if a.request_id not in aborted:
            expected = [FAKE_TOKEN_BASE + i % 800 for i in range(a.output_tokens)]
            assert engine.driver.emitted[a.request_id] == expected
