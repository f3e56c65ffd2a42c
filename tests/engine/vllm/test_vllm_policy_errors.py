"""A policy that raises degrades to stock vLLM's decision for that call; the engine core lives."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from prometheus_client import CollectorRegistry
from vllm_adapter_helpers import DelegatingPolicy, assert_all_done, make_engine, pressure_workload

from sloserve_engine.contract.pod import STATE_PATH_ENV
from sloserve_engine.policy import make_policy
from sloserve_engine.policy.guard import PolicyErrorLog
from sloserve_engine.policy.ordering import StartDeadline
from sloserve_engine.policy.views import (
    ArrivalInfo,
    EngineSnapshot,
    FinishedInfo,
    Prediction,
    PreemptionMode,
    RequestView,
    StepPlan,
)
from sloserve_engine.telemetry.metrics import POLICY_CALLS, EngineMetrics
from sloserve_engine.vllm.scheduler import SLOScheduler, SLOSyncScheduler

pytestmark = pytest.mark.vllm


class FlakyPolicy(DelegatingPolicy):
    """The real ``sloserve`` policy, except that some calls raise (counted by method)."""

    def __init__(self) -> None:
        super().__init__(make_policy("sloserve"))
        self.calls: Counter[str] = Counter()
        self.raised: Counter[str] = Counter()

    def _maybe_raise(self, call: str, every: int) -> None:
        self.calls[call] += 1
        if self.calls[call] % every == 0:
            self.raised[call] += 1
            raise RuntimeError(f"flaky {call}")

    def on_arrival(self, info: ArrivalInfo) -> Prediction:
        self._maybe_raise("on_arrival", 3)
        return super().on_arrival(info)

    def on_finish(self, info: FinishedInfo) -> None:
        self._maybe_raise("on_finish", 2)
        super().on_finish(info)

    def plan(self, snapshot: EngineSnapshot) -> StepPlan:
        self._maybe_raise("plan", 4)
        return super().plan(snapshot)

    def can_admit(
        self,
        free_blocks: int,
        total_blocks: int,
        block_size: int,
        running: Sequence[RequestView],
        candidate: RequestView,
        now: float,
    ) -> bool:
        self._maybe_raise("can_admit", 2)
        return super().can_admit(free_blocks, total_blocks, block_size, running, candidate, now)

    def preemption_mode(self, victim: RequestView) -> PreemptionMode:
        self._maybe_raise("preemption_mode", 1)
        return super().preemption_mode(victim)

    def start_deadline(self, now: float) -> StartDeadline | None:
        self._maybe_raise("start_deadline", 2)
        return super().start_deadline(now)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async-depth2"])
def test_raising_policy_degrades_and_every_request_finishes_exactly(
    tiny_model_dir: Path,
    tmp_path: Path,
    asynchronous: bool,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(STATE_PATH_ENV, str(tmp_path / "state.json"))  # publishes: start_deadline
    cls = SLOScheduler if asynchronous else SLOSyncScheduler
    engine = make_engine(cls, tiny_model_dir, asynchronous=asynchronous, knobs={"policy": "vllm"})
    sched = engine.scheduler
    sched.sloserve_metrics_interval_s = 0.0  # report (and publish) every step
    registry = CollectorRegistry()
    sched.use_metrics(EngineMetrics(registry, mode="vllm"))
    policy = FlakyPolicy()
    sched.set_policy(policy)
    workload = pressure_workload()
    with caplog.at_level(logging.ERROR, logger="sloserve_engine.vllm.scheduler"):
        engine.run(workload)

    assert_all_done(engine.driver, engine.spec, workload)
    assert set(policy.raised) == set(POLICY_CALLS), f"every guarded call must fail: {policy.raised}"
    for call in POLICY_CALLS:
        got = registry.get_sample_value("sloserve_policy_errors_total", {"call": call})
        assert got == policy.raised[call], call
    stats = sched.sloserve_stats
    assert stats.policy_errors == sum(policy.raised.values())
    assert stats.finished == len(workload) and stats.aborted == 0
    assert stats.preemptions["swap"] == 0, "a failed preemption_mode means recompute"
    # Logged once per distinct error, and at most one new error per 10 s of wall time.
    lines = [r for r in caplog.records if "policy" in r.getMessage()]
    assert 1 <= len(lines) <= len(POLICY_CALLS)
    assert len(lines) < stats.policy_errors


def test_error_log_once_per_distinct_error_and_rate_limited() -> None:
    logger = logging.getLogger("test.policyguard")
    errors = PolicyErrorLog(logger, interval_s=1.0)
    assert errors.report("plan", RuntimeError("a"), now=0.0)
    assert not errors.report("plan", RuntimeError("a"), now=5.0), "a repeat is not logged again"
    assert not errors.report("plan", RuntimeError("b"), now=0.5), "a new error within 1 s waits"
    assert errors.report("plan", RuntimeError("b"), now=5.0)
    assert errors.suppressed == 0
    assert not errors.report("can_admit", RuntimeError("a"), now=5.1)
    assert errors.suppressed == 1
    assert errors.report("can_admit", RuntimeError("a"), now=6.1), "another call is distinct"


def test_unknown_policy_call_is_refused_by_the_metric() -> None:
    metrics = EngineMetrics(CollectorRegistry(), mode="vllm")
    with pytest.raises(ValueError, match="unknown policy call"):
        metrics.record_policy_error("plan_typo")
