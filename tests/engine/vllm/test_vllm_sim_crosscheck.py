"""Cross-check: the vLLM adapter and the simulator make the same decisions, step by step.

Both executors run the same named policy on the same workload in synchronous
mode. The adapter's clock is slaved to the simulator's (a step is planned at
the simulated step's start and its tokens land at its end), so time-dependent
policies see the same ``now``. Every step's ``EngineSnapshot`` (queue order,
computed tokens, blocks held, free blocks, predictions, first-token times) and
the ``StepPlan`` made from it must be identical. Known, documented difference
(docs/vllm-adapter.md): the simulator's swap path; no swap happens here since
the adapter has no KV offload connector on CPU and every policy must then
recompute (the simulator is given the same constraint by forcing recompute).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from vllm_adapter_helpers import Arrival, assert_all_done, make_engine, pressure_workload

from sloserve_engine.policy import make_policy
from sloserve_engine.policy.base import Policy
from sloserve_engine.policy.costmodel import cost_model_for
from sloserve_engine.policy.knobs import POLICY_NAMES, PolicyKnobs
from sloserve_engine.policy.views import (
    ArrivalInfo,
    EngineSnapshot,
    FinishedInfo,
    Prediction,
    PreemptionMode,
    RequestView,
    StepPlan,
)
from sloserve_engine.sim import SimConfig, SimEngine, SimProfile
from sloserve_engine.vllm.cpu_driver import make_request
from sloserve_engine.vllm.scheduler import SLOSyncScheduler

pytestmark = pytest.mark.vllm

ARRIVAL_GAP_S = 0.02


@dataclass
class Recorder:
    """Delegates to a policy and records every (snapshot, plan) it was asked for."""

    inner: Policy
    steps: list[tuple[EngineSnapshot, StepPlan]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def knobs(self) -> PolicyKnobs:
        return self.inner.knobs

    def set_knobs(self, knobs: PolicyKnobs) -> None:
        self.inner.set_knobs(knobs)

    def on_arrival(self, info: ArrivalInfo) -> Prediction:
        return self.inner.on_arrival(info)

    def on_finish(self, info: FinishedInfo) -> None:
        self.inner.on_finish(info)

    def plan(self, snapshot: EngineSnapshot) -> StepPlan:
        plan = self.inner.plan(snapshot)
        self.steps.append((snapshot, plan))
        return plan

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
        self.inner.preemption_mode(victim)
        return PreemptionMode.RECOMPUTE


def run_sim(
    policy: Recorder, arrivals: Sequence[Arrival]
) -> tuple[list[tuple[float, float, list[Arrival]]], SimEngine]:
    """The simulated run: per step (start, end, requests added just before it)."""
    model = cost_model_for()
    config = SimConfig(
        kv_tokens=41 * 16,  # the simulator, like vLLM, keeps one null block
        block_size=16,
        max_num_seqs=6,
        max_num_batched_tokens=64,
        max_model_len=512,
        scheduling="sync",
    )
    sim = SimEngine(policy, SimProfile(step=model), config)  # type: ignore[arg-type]
    pending = sorted(arrivals, key=lambda a: a.step)
    steps: list[tuple[float, float, list[Arrival]]] = []
    added: list[Arrival] = []
    while pending or sim.has_unfinished:
        while pending and pending[0].step * ARRIVAL_GAP_S <= sim.now:
            a = pending.pop(0)
            sim.add_request(
                a.request_id,
                a.prompt_tokens,
                a.output_tokens,
                slo=None,
                arrival_time=a.step * ARRIVAL_GAP_S,
            )
            added.append(a)
        if not sim.has_unfinished:
            sim.advance_to(pending[0].step * ARRIVAL_GAP_S)
            continue
        result = sim.step()
        steps.append((result.start, result.end, added))
        added = []
        assert len(steps) < 5000
    return steps, sim


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_adapter_and_simulator_agree_step_by_step(tiny_model_dir: Path, policy: str) -> None:
    arrivals = [
        Arrival(a.request_id, a.prompt_tokens, a.output_tokens, a.step) for a in pressure_workload()
    ]
    model = cost_model_for()
    sim_policy = Recorder(make_policy(policy, PolicyKnobs(), model))
    sim_steps, sim = run_sim(sim_policy, arrivals)

    engine = make_engine(SLOSyncScheduler, tiny_model_dir, asynchronous=False)
    adapter_policy = Recorder(make_policy(policy, PolicyKnobs(), model))
    engine.scheduler.set_policy(adapter_policy)
    times: list[float] = []
    engine.scheduler.sloserve_clock = lambda: times.pop(0)
    for start, end, added in sim_steps:
        for a in added:
            engine.driver.add(
                make_request(
                    a.request_id,
                    a.prompt_tokens,
                    a.output_tokens,
                    engine.spec.block_size,
                    arrival_time=a.step * ARRIVAL_GAP_S,
                )
            )
        times[:] = [start, end]
        engine.driver.step()
    for i, (ours, theirs) in enumerate(zip(adapter_policy.steps, sim_policy.steps, strict=False)):
        assert ours[0] == theirs[0], f"snapshots differ at step {i}"
        assert ours[1] == theirs[1], f"plans differ at step {i}"
    assert len(adapter_policy.steps) == len(sim_policy.steps)
    assert not engine.scheduler.requests
    engine.scheduler.sloserve_clock = lambda: sim.now
    while engine.driver.busy:  # one more (empty) step tells the workers what finished
        engine.driver.step()
    assert_all_done(engine.driver, engine.spec, arrivals)
    assert (
        sim.stats().preemptions_recompute
        == engine.scheduler.sloserve_stats.preemptions[PreemptionMode.RECOMPUTE]
    )
