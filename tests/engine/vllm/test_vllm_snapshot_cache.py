"""The snapshot's waiting tuple, reused while the queues are unchanged, never goes stale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from vllm.v1.request import Request, RequestStatus
from vllm_adapter_helpers import Arrival, DelegatingPolicy, make_engine

from sloserve_engine.policy import make_policy
from sloserve_engine.policy.base import Policy
from sloserve_engine.policy.views import (
    ArrivalInfo,
    EngineSnapshot,
    Prediction,
    RequestView,
    StepPlan,
)
from sloserve_engine.vllm.scheduler import SLOScheduler, SLOSyncScheduler

pytestmark = pytest.mark.vllm


def fresh_view(sched: Any, request: Request) -> RequestView:
    """The request's view built from scratch (no cache), the oracle."""
    meta = sched._sl_meta[request.request_id]
    manager = sched.kv_cache_manager.coordinator.single_type_managers[0]
    return RequestView(
        request_id=request.request_id,
        arrival_time=request.arrival_time,
        prompt_tokens=request.num_prompt_tokens,
        output_tokens=request.num_output_tokens,
        computed_tokens=request.num_computed_tokens,
        blocks_held=len(manager.req_to_blocks.get(request.request_id, ())),
        slo=meta.slo,
        predicted_output=meta.predicted_output,
        output_bound=meta.output_bound,
        max_output_tokens=meta.max_output_tokens,
        first_token_time=meta.first_token_time,
        num_preemptions=request.num_preemptions,
        swapped_tokens=meta.swapped_tokens,
    )


class CheckingPolicy(DelegatingPolicy):
    """Compares every snapshot's waiting tuple with fresh views; counts stale tuples and reuses."""

    def __init__(self, inner: Policy, sched: Any, last: tuple[RequestView, ...] = ()) -> None:
        super().__init__(inner)
        self.sched = sched
        self.last = last
        self.last_queued: list[Request] = []
        self.reused = 0
        self.stale = 0

    def plan(self, snapshot: EngineSnapshot) -> StepPlan:
        queued = [*self.sched.skipped_waiting, *self.sched.waiting]
        # Counted, not asserted: the scheduler guards plan() and would swallow the error.
        self.stale += snapshot.waiting != tuple(fresh_view(self.sched, r) for r in queued)
        self.reused += bool(snapshot.waiting) and snapshot.waiting is self.last
        self.last = snapshot.waiting
        self.last_queued = queued
        return self.inner.plan(snapshot)


class RepredictingPolicy(CheckingPolicy):
    """Predicts half of what ``inner`` does, so a switch to it changes every queued view."""

    def on_arrival(self, info: ArrivalInfo) -> Prediction:
        p = self.inner.on_arrival(info)
        return Prediction(p.predicted_output // 2, p.output_bound // 2)


def crowd() -> list[Arrival]:
    """More requests than seats and KV: a long queue that stays unchanged for many steps."""
    return [Arrival(f"r{i}", 20 + 7 * (i % 5), 6 + 5 * (i % 4), step=i // 4) for i in range(24)]


@pytest.mark.parametrize(
    ("asynchronous", "kv_offload"),
    [(False, False), (True, False), (True, True)],
    ids=["sync", "async-depth2", "async-offload"],
)
@pytest.mark.parametrize("first", ["vllm", "sloserve"])
def test_reused_waiting_views_equal_fresh_views(
    tiny_model_dir: Path, first: str, asynchronous: bool, kv_offload: bool
) -> None:
    cls = SLOScheduler if asynchronous else SLOSyncScheduler
    engine = make_engine(
        cls, tiny_model_dir, asynchronous=asynchronous, num_blocks=25, kv_offload=kv_offload
    )
    sched = engine.scheduler
    checking = CheckingPolicy(make_policy(first), sched)
    sched.set_policy(checking)
    other = "sloserve" if first == "vllm" else "vllm"
    switched: list[RepredictingPolicy] = []

    def disturb(step: int) -> None:
        # An abort from the middle of the queue, behind an unchanged head (only without the
        # offload connector: with it, this abort trips an assertion in vLLM's offloading
        # scheduler under the CPU driver).
        if step == 4 and not kv_offload:
            middle = list(sched.waiting)[len(sched.waiting) // 2]
            sched.finish_requests([middle.request_id], RequestStatus.FINISHED_ABORTED)
        # A switch re-predicts every queued request while the queues stay as they were.
        queued = [*sched.skipped_waiting, *sched.waiting]
        if not switched and step >= 8 and queued and queued == checking.last_queued:
            switched.append(RepredictingPolicy(make_policy(other), sched, checking.last))
            sched.set_policy(switched[0])

    engine.run(crowd(), before_step=disturb)
    assert switched, "the switch must find the queues as the last snapshot saw them"
    assert checking.stale + switched[0].stale == 0, "a snapshot saw stale waiting views"
    assert sched.sloserve_stats.policy_errors == 0
    reused = checking.reused + switched[0].reused
    if kv_offload:
        assert reused == 0, "with a KV connector the views are checked every step"
    else:
        assert reused > 0, "the workload must exercise the reuse"
