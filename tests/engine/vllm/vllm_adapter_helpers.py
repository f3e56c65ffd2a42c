"""Shared helpers of the vLLM-adapter tests: workloads, a stepping loop, vLLM invariants."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.engine.core import EngineCore
from vllm.v1.request import Request, RequestStatus

from sloserve_engine.bench.cpu_driver import (
    FAKE_TOKEN_BASE,
    CpuEngineSpec,
    FakeExecutor,
    FakeModelDriver,
    StepRecord,
    build_vllm_config,
    make_request,
)
from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.policy.base import Policy
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

STEP_S = 0.01
"""Fake clock: every engine step lasts 10 ms (arrival times use the same clock)."""


@dataclass(frozen=True, slots=True)
class Arrival:
    request_id: str
    prompt_tokens: int
    output_tokens: int
    step: int = 0
    """Engine step before which the request arrives."""
    extra_args: dict[str, Any] = field(default_factory=dict)
    prompt_seed: str | None = None
    """Requests with the same seed share their prompt prefix."""


def pressure_workload() -> list[Arrival]:
    """Eight requests whose contexts outgrow a 40-block cache: chunking, holdback, preemption."""
    shapes = [(100, 40), (60, 70), (40, 90), (150, 30), (30, 120), (80, 60), (20, 100), (120, 20)]
    classes = ["interactive", "batch"]
    return [
        Arrival(
            f"r{i}",
            p,
            o,
            step=3 * i,
            extra_args={"slo_class": classes[i % 2], "ttft_ms": 200 + 300 * (i % 2)},
        )
        for i, (p, o) in enumerate(shapes)
    ]


def check_invariants(sched: Scheduler, spec: CpuEngineSpec, record: StepRecord | None) -> None:
    """What must hold after every step, whatever the policy asked for."""
    usable = spec.num_blocks - 1
    pool = sched.kv_cache_manager.block_pool
    manager = sched.kv_cache_manager.coordinator.single_type_managers[0]
    held = [b.block_id for blocks in manager.req_to_blocks.values() for b in blocks]
    distinct = set(held)
    assert 0 not in distinct, "the null block was handed out"
    if not spec.enable_prefix_caching:
        assert len(held) == len(distinct), "a KV block is held by two requests"
    for block_id in distinct:
        assert pool.blocks[block_id].ref_cnt == held.count(block_id), "ref count drift"
    assert len(distinct) + pool.get_num_free_blocks() == usable, "KV blocks lost or over-allocated"
    assert len(sched.running) <= spec.max_num_seqs
    queued = [*sched.waiting, *sched.skipped_waiting]
    members = [r.request_id for r in (*sched.running, *queued)]
    assert len(members) == len(set(members)), "a request sits in two queues"
    assert set(members) == set(sched.requests), "a live request is in no queue"
    for request in sched.running:
        assert request.status == RequestStatus.RUNNING
    for request in queued:
        assert request.status != RequestStatus.RUNNING
    if record is not None:
        assert sum(record.num_scheduled_tokens.values()) <= spec.max_num_batched_tokens


def run_workload(
    driver: FakeModelDriver,
    spec: CpuEngineSpec,
    arrivals: Sequence[Arrival],
    clock: list[float],
    before_step: Callable[[int], None] | None = None,
    max_steps: int = 5000,
) -> dict[str, Request]:
    """Add requests when due, step until every request is done, check invariants each step."""
    pending = sorted(arrivals, key=lambda a: a.step)
    requests: dict[str, Request] = {}
    step = 0
    while pending or driver.busy:
        assert step < max_steps, "workload did not finish"
        clock[0] = step * STEP_S
        while pending and pending[0].step <= step:
            a = pending.pop(0)
            request = make_request(
                a.request_id,
                a.prompt_tokens,
                a.output_tokens,
                spec.block_size,
                arrival_time=clock[0],
                extra_args=a.extra_args,
                prompt_seed=a.prompt_seed,
            )
            requests[a.request_id] = request
            driver.add(request)
        if before_step is not None:
            before_step(step)
        record = driver.step()
        check_invariants(driver.scheduler, spec, record)
        step += 1
    return requests


def assert_all_done(
    driver: FakeModelDriver, spec: CpuEngineSpec, arrivals: Sequence[Arrival]
) -> None:
    """Every request finished with exactly its tokens; every block is back in the pool."""
    sched = driver.scheduler
    for a in arrivals:
        expected = [FAKE_TOKEN_BASE + i % 800 for i in range(a.output_tokens)]
        assert driver.emitted[a.request_id] == expected, a.request_id
        assert driver.finished[a.request_id] == "length", a.request_id
    assert not sched.requests and not sched.running
    assert not sched.waiting and not sched.skipped_waiting
    assert sched.kv_cache_manager.block_pool.get_num_free_blocks() == spec.num_blocks - 1


@dataclass(slots=True)
class Engine:
    """A scheduler under test with its driver, spec and fake clock."""

    driver: FakeModelDriver
    spec: CpuEngineSpec
    clock: list[float]

    @property
    def scheduler(self) -> Any:
        return self.driver.scheduler

    def run(
        self, arrivals: Sequence[Arrival], before_step: Callable[[int], None] | None = None
    ) -> dict[str, Request]:
        return run_workload(self.driver, self.spec, arrivals, self.clock, before_step)


def make_engine(
    scheduler_cls: type[Scheduler],
    model_dir: Any,
    *,
    asynchronous: bool,
    knobs: dict[str, Any] | None = None,
    sloserve: dict[str, Any] | None = None,
    num_blocks: int = 41,
    max_num_seqs: int = 6,
    max_num_batched_tokens: int = 64,
    kv_offload: bool = False,
    prefix_caching: bool = False,
) -> Engine:
    """A real vLLM scheduler of ``scheduler_cls`` on the tiny model, driven by the fake model."""
    from prometheus_client import CollectorRegistry

    from sloserve_engine.bench.cpu_driver import build_scheduler, build_vllm_config
    from sloserve_engine.telemetry.metrics import EngineMetrics
    from sloserve_engine.vllm.scheduler import SLOSchedulerMixin

    section = dict(sloserve or {})
    if knobs is not None:
        section["knobs"] = knobs
    spec = CpuEngineSpec(
        model_dir=model_dir,
        num_blocks=num_blocks,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        max_model_len=512,
        async_scheduling=asynchronous,
        additional_config={"sloserve": section} if section else {},
        kv_offload=kv_offload,
        enable_prefix_caching=prefix_caching,
    )
    sched = build_scheduler(scheduler_cls, build_vllm_config(spec), spec)
    clock = [0.0]
    if isinstance(sched, SLOSchedulerMixin):
        sched.sloserve_clock = lambda: clock[0]
        sched.use_metrics(EngineMetrics(CollectorRegistry(), mode="vllm"))
        sched.sloserve_metrics_interval_s = 0.0
    return Engine(FakeModelDriver(sched, depth=2 if asynchronous else 1), spec, clock)


class DelegatingPolicy:
    """Forwards every Policy call to ``inner``; test wrappers override only what they watch."""

    def __init__(self, inner: Policy) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def knobs(self) -> Knobs:
        return self.inner.knobs

    def set_knobs(self, knobs: Knobs) -> None:
        self.inner.set_knobs(knobs)

    def on_arrival(self, info: ArrivalInfo) -> Prediction:
        return self.inner.on_arrival(info)

    def on_finish(self, info: FinishedInfo) -> None:
        self.inner.on_finish(info)

    def plan(self, snapshot: EngineSnapshot) -> StepPlan:
        return self.inner.plan(snapshot)

    def can_admit(
        self,
        free_blocks: int,
        total_blocks: int,
        block_size: int,
        running: Sequence[RequestView],
        candidate: RequestView,
        now: float,
    ) -> bool:
        return self.inner.can_admit(free_blocks, total_blocks, block_size, running, candidate, now)

    def preemption_mode(self, victim: RequestView) -> PreemptionMode:
        return self.inner.preemption_mode(victim)

    def start_deadline(self, now: float) -> StartDeadline | None:
        return self.inner.start_deadline(now)


def real_engine_core(spec: CpuEngineSpec, scheduler_cls: str) -> EngineCore:
    """vLLM's real EngineCore with ``scheduler_cls`` (as ``--scheduler-cls`` names it) and
    only the model faked (``FakeExecutor``); the KV cache has exactly ``spec.num_blocks``."""
    config = build_vllm_config(spec)
    config.scheduler_config.scheduler_cls = scheduler_cls
    config.cache_config.num_gpu_blocks_override = spec.num_blocks
    return EngineCore(config, FakeExecutor, log_stats=True)
