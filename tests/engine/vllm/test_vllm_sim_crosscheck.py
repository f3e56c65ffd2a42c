"""Cross-check: the vLLM adapter and the simulator make the same decisions, step by step.

Both executors run the same named policy on the same workload, synchronously
and with asynchronous scheduling (vLLM's batch queue of depth 2; the simulator's
async mode). The adapter's clock is slaved to the simulator's: its k-th plan
sees the simulator's ``now`` of the k-th plan, and a batch's tokens land at the
end time of the matching simulated step, so time-dependent policies see the
same times. Every ``EngineSnapshot`` (queue order, computed tokens, blocks
held, free blocks, predictions, first-token times) and the ``StepPlan`` made
from it must be identical. vLLM plans one extra, empty step at the end (it
tells the workers which requests finished). Preemption is forced to recompute
on both sides: swap costs differ by construction (real connector vs modelled
transfer time) and are tested in test_vllm_swap.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from vllm_adapter_helpers import (
    Arrival,
    DelegatingPolicy,
    assert_all_done,
    make_engine,
    pressure_workload,
)

from sloserve_engine.bench.cpu_driver import make_request
from sloserve_engine.contract.knobs import POLICY_NAMES, Knobs
from sloserve_engine.policy import make_policy
from sloserve_engine.policy.base import Policy
from sloserve_engine.policy.costmodel import cost_model_for
from sloserve_engine.policy.views import (
    EngineSnapshot,
    PreemptionMode,
    RequestView,
    StepPlan,
)
from sloserve_engine.sim import SimConfig, SimEngine, SimProfile
from sloserve_engine.vllm.scheduler import SLOScheduler, SLOSyncScheduler

pytestmark = pytest.mark.vllm

ARRIVAL_GAP_S = 0.02


class Recorder(DelegatingPolicy):
    """Delegates to a policy and records every (snapshot, plan) it was asked for."""

    def __init__(self, inner: Policy) -> None:
        super().__init__(inner)
        self.steps: list[tuple[EngineSnapshot, StepPlan]] = []

    def plan(self, snapshot: EngineSnapshot) -> StepPlan:
        plan = self.inner.plan(snapshot)
        self.steps.append((snapshot, plan))
        return plan

    def preemption_mode(self, victim: RequestView) -> PreemptionMode:
        self.inner.preemption_mode(victim)
        return PreemptionMode.RECOMPUTE


@dataclass
class SimRun:
    """What the adapter must replay: arrivals by plan index and when batches landed."""

    due: dict[int, list[Arrival]]
    """Arrivals the simulator had queued before its n-th plan call."""
    ends: list[float]
    """End time of every non-empty simulated step, in order (when its tokens landed)."""
    sim: SimEngine


def run_sim(policy: Recorder, arrivals: Sequence[Arrival], scheduling: str) -> SimRun:
    model = cost_model_for()
    config = SimConfig(
        kv_tokens=41 * 16,  # the simulator, like vLLM, keeps one null block
        block_size=16,
        max_num_seqs=6,
        max_num_batched_tokens=64,
        max_model_len=512,
        scheduling=scheduling,  # type: ignore[arg-type]
    )
    sim = SimEngine(policy, SimProfile(step=model), config)  # type: ignore[arg-type]
    pending = sorted(arrivals, key=lambda a: a.step)
    run = SimRun({}, [], sim)
    while pending or sim.has_unfinished:
        while pending and pending[0].step * ARRIVAL_GAP_S <= sim.now:
            a = pending.pop(0)
            sim.add_request(
                a.request_id, a.prompt_tokens, a.output_tokens, arrival_time=a.step * ARRIVAL_GAP_S
            )
            run.due.setdefault(len(policy.steps), []).append(a)
        if not sim.has_unfinished:
            sim.advance_to(pending[0].step * ARRIVAL_GAP_S)
            continue
        result = sim.step()
        if not result.idle:
            run.ends.append(result.end)
        assert len(policy.steps) < 5000
    return run


def slave_clock(sched: Any, ours: Recorder, theirs: Recorder, ends: list[float]) -> None:
    """Plan k sees the simulator's ``now`` of its plan k; tokens land at the simulated ends."""
    cls = type(sched)
    now = [0.0]
    ends = list(ends)
    sched.sloserve_clock = lambda: now[0]

    def schedule(throttle_prefills: bool = False) -> Any:
        if len(ours.steps) < len(theirs.steps):
            now[0] = theirs.steps[len(ours.steps)][0].now
        return cls.schedule(sched, throttle_prefills)

    def update_from_output(output: Any, model_output: Any) -> Any:
        if output.total_num_scheduled_tokens > 0:
            now[0] = ends.pop(0)
        return cls.update_from_output(sched, output, model_output)

    sched.schedule = schedule
    sched.update_from_output = update_from_output


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async-depth2"])
@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_adapter_and_simulator_agree_step_by_step(
    tiny_model_dir: Path, policy: str, asynchronous: bool
) -> None:
    arrivals = [
        Arrival(a.request_id, a.prompt_tokens, a.output_tokens, a.step) for a in pressure_workload()
    ]
    model = cost_model_for()
    sim_policy = Recorder(make_policy(policy, Knobs(), model))
    run = run_sim(sim_policy, arrivals, "async" if asynchronous else "sync")

    cls = SLOScheduler if asynchronous else SLOSyncScheduler
    engine = make_engine(cls, tiny_model_dir, asynchronous=asynchronous)
    ours = Recorder(make_policy(policy, Knobs(), model))
    engine.scheduler.set_policy(ours)
    slave_clock(engine.scheduler, ours, sim_policy, run.ends)
    due = dict(run.due)
    while due or engine.driver.busy:
        for index in sorted(k for k in due if k <= len(ours.steps)):
            for a in due.pop(index):
                engine.driver.add(
                    make_request(
                        a.request_id,
                        a.prompt_tokens,
                        a.output_tokens,
                        engine.spec.block_size,
                        arrival_time=a.step * ARRIVAL_GAP_S,
                    )
                )
        engine.driver.step()

    n = len(sim_policy.steps)
    for i, (mine, theirs) in enumerate(zip(ours.steps, sim_policy.steps, strict=False)):
        assert mine[0] == theirs[0], f"snapshots differ at plan {i}"
        assert mine[1] == theirs[1], f"plans differ at plan {i}"
    # vLLM plans once more: the step that tells the workers what finished (nothing to run).
    assert len(ours.steps) == n + 1
    assert not ours.steps[n][0].running and not ours.steps[n][0].waiting
    assert_all_done(engine.driver, engine.spec, arrivals)
    stats = run.sim.stats()
    assert (
        stats.preemptions_recompute
        == engine.scheduler.sloserve_stats.preemptions[PreemptionMode.RECOMPUTE]
    )
