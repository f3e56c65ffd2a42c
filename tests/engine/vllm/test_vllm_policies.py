"""Every named policy, run inside real vLLM 0.26.0 schedulers (sync and async depth 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from vllm_adapter_helpers import assert_all_done, make_engine, pressure_workload

from sloserve_engine.contract.knobs import POLICY_NAMES
from sloserve_engine.vllm.scheduler import SLOScheduler, SLOSyncScheduler

pytestmark = pytest.mark.vllm


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async-depth2"])
@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_named_policy_finishes_every_request_exactly(
    tiny_model_dir: Path, policy: str, asynchronous: bool
) -> None:
    cls = SLOScheduler if asynchronous else SLOSyncScheduler
    engine = make_engine(cls, tiny_model_dir, asynchronous=asynchronous, knobs={"policy": policy})
    workload = pressure_workload()
    engine.run(workload)
    assert_all_done(engine.driver, engine.spec, workload)
    stats = engine.scheduler.sloserve_stats
    assert engine.scheduler.sloserve_policy.name == policy
    assert stats.finished == len(workload) and stats.aborted == 0
    assert stats.invalid_slo == 0
