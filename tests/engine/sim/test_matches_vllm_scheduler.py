"""The simulator's step semantics against real vLLM 0.26.0 schedulers, sync AND async.

Stock ``Scheduler`` (sync) and stock ``AsyncScheduler`` (batch queue of 2,
driven like ``EngineCore.step_with_batch_queue`` by the adapter's fake-model
driver) run the same workload as ``SimEngine`` with the ``vllm`` policy. Before
every ``schedule()`` call both must be in the same state: running order,
computed and output tokens per request, waiting order, free KV blocks. That
covers chunked prefill, full-prompt admission, preemption from the end,
placeholders and the one-step-late block freeing of async scheduling.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.scheduler import Scheduler

from sloserve_engine.bench.cpu_driver import (
    CpuEngineSpec,
    FakeModelDriver,
    build_scheduler,
    build_vllm_config,
    make_request,
)
from sloserve_engine.policy.costmodel import StepCostModel
from sloserve_engine.policy.views import EngineSnapshot, StepPlan
from sloserve_engine.policy.vllm_fcfs import VllmFcfsPolicy
from sloserve_engine.sim import SimConfig, SimEngine, SimProfile

pytestmark = pytest.mark.vllm

TINY_MODEL = Path(__file__).parents[1] / "vllm" / "data" / "tiny-llama"
State = tuple[tuple[tuple[str, int, int], ...], tuple[str, ...], int]

WORKLOADS = {
    # (prompt, output) per request, all queued at the start; 40 usable blocks.
    "pressure": [(100, 40), (60, 70), (40, 90), (150, 30), (30, 120), (80, 60), (20, 100)],
    "long-prompts": [(300, 5), (250, 12), (17, 30), (33, 3), (400, 2), (16, 16)],
    "many-short": [(10 + 7 * i, 1 + (i * 5) % 23) for i in range(20)],
}
for seed in range(4):  # heavy KV pressure: many preemptions, in sync and async
    rng = random.Random(seed)
    WORKLOADS[f"random-{seed}"] = [
        (rng.randint(5, 200), rng.randint(20, 150)) for _ in range(rng.randint(8, 16))
    ]


def recording(cls: type[Scheduler], states: list[State]) -> type[Scheduler]:
    class Recording(cls):  # type: ignore[valid-type,misc]
        def schedule(self, *args: Any, **kwargs: Any) -> Any:
            states.append(
                (
                    tuple(
                        (r.request_id, r.num_computed_tokens, r.num_output_tokens)
                        for r in self.running
                    ),
                    tuple(r.request_id for r in self.waiting),
                    self.kv_cache_manager.block_pool.get_num_free_blocks(),
                )
            )
            return super().schedule(*args, **kwargs)

    return Recording


class RecordingPolicy(VllmFcfsPolicy):
    def __init__(self, states: list[State]) -> None:
        super().__init__()
        self.states = states

    def plan(self, snapshot: EngineSnapshot) -> StepPlan:
        self.states.append(
            (
                tuple((r.request_id, r.computed_tokens, r.output_tokens) for r in snapshot.running),
                tuple(r.request_id for r in snapshot.waiting),
                snapshot.free_blocks,
            )
        )
        return super().plan(snapshot)


def vllm_states(
    asynchronous: bool, workload: list[tuple[int, int]], threshold: int = 0
) -> list[State]:
    states: list[State] = []
    spec = CpuEngineSpec(
        model_dir=TINY_MODEL,
        num_blocks=41,
        max_num_seqs=6,
        max_num_batched_tokens=64,
        max_model_len=512,
        async_scheduling=asynchronous,
        long_prefill_token_threshold=threshold,
    )
    base = AsyncScheduler if asynchronous else Scheduler
    sched = build_scheduler(recording(base, states), build_vllm_config(spec), spec)
    driver = FakeModelDriver(sched, depth=2 if asynchronous else 1)
    for i, (p, o) in enumerate(workload):
        driver.add(make_request(f"r{i}", p, o, spec.block_size, arrival_time=0.0))
    for _ in range(5000):
        if not driver.busy:
            break
        driver.step()
    assert not driver.busy
    assert all(len(driver.emitted[f"r{i}"]) == o for i, (_, o) in enumerate(workload))
    return states


def sim_states(
    asynchronous: bool, workload: list[tuple[int, int]], threshold: int = 0
) -> list[State]:
    states: list[State] = []
    config = SimConfig(
        kv_tokens=41 * 16,
        max_num_seqs=6,
        max_num_batched_tokens=64,
        max_model_len=512,
        long_prefill_token_threshold=threshold,
        scheduling="async" if asynchronous else "sync",
    )
    engine = SimEngine(
        RecordingPolicy(states), SimProfile(StepCostModel(c0_s=0.01, prefill_token_s=0.0)), config
    )
    for i, (p, o) in enumerate(workload):
        engine.add_request(f"r{i}", p, o, arrival_time=0.0)
    for _ in range(5000):
        if not engine.has_unfinished:
            break
        assert not engine.step().idle
    assert not engine.has_unfinished
    return states


def drop_trailing_idle(states: list[State]) -> list[State]:
    """vLLM calls ``schedule()`` once more after the last finish (nothing left to run)."""
    while states and not states[-1][0] and not states[-1][1]:
        states.pop()
    return states


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_same_state_before_every_schedule(asynchronous: bool, workload: str) -> None:
    expected = drop_trailing_idle(vllm_states(asynchronous, WORKLOADS[workload]))
    got = drop_trailing_idle(sim_states(asynchronous, WORKLOADS[workload]))
    for k, (a, b) in enumerate(zip(expected, got, strict=False)):
        assert a == b, f"schedule() call {k} differs:\nvllm {a}\nsim  {b}"
    assert len(expected) == len(got)


@pytest.mark.parametrize("workload", ["pressure", "long-prompts", "random-0"])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_long_prefill_token_threshold_same_state_before_every_schedule(
    asynchronous: bool, workload: str
) -> None:
    """The tuned-stock baseline's cap on one request's prefill chunk, as vLLM applies it."""
    expected = drop_trailing_idle(vllm_states(asynchronous, WORKLOADS[workload], threshold=24))
    got = drop_trailing_idle(sim_states(asynchronous, WORKLOADS[workload], threshold=24))
    for k, (a, b) in enumerate(zip(expected, got, strict=False)):
        assert a == b, f"schedule() call {k} differs:\nvllm {a}\nsim  {b}"
    assert len(expected) == len(got)
    untuned = drop_trailing_idle(vllm_states(asynchronous, WORKLOADS[workload]))
    assert untuned != expected, "the threshold must change vLLM's schedule on this workload"
