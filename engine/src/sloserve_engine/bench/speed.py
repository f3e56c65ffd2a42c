"""How fast the simulator replays, and what a policy's per-step decision costs (benchmarks)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..contract.knobs import Knobs
from ..contract.slo import SLO
from ..policy import make_policy
from ..sim.costmodel import SimProfile
from ..sim.engine import SimConfig, SimEngine
from ..sim.runner import replay
from ..sim.workload import WorkloadSpec, build_workload


@dataclass(frozen=True, slots=True)
class ReplaySpeed:
    wall_s: float
    simulated_s: float
    steps: int


def replay_speed(
    policy: str, workload: WorkloadSpec, profile: SimProfile, config: SimConfig, repeat: int = 3
) -> ReplaySpeed:
    """Best wall time of ``repeat`` full replays (workload building excluded): the minimum is
    the least disturbed by other processes on a shared machine."""
    requests = build_workload(workload)
    best: ReplaySpeed | None = None
    for _ in range(max(repeat, 1)):
        result = replay(
            requests, make_policy(policy, Knobs(), profile.step), profile, config, SLO()
        )
        if best is None or result.wall_seconds < best.wall_s:
            best = ReplaySpeed(result.wall_seconds, result.metrics.makespan, result.steps)
    assert best is not None
    return best


def decision_cost(policy: str, profile: SimProfile, running: int, repeats: int = 200) -> float:
    """Mean seconds for snapshot + ``plan`` + one ``can_admit`` with ``running`` requests running
    and as many waiting (what the executor asks a policy every step)."""
    config = SimConfig(kv_tokens=running * 4096 * 2, max_num_seqs=running, scheduling="sync")
    engine = SimEngine(make_policy(policy, Knobs(), profile.step), profile, config)
    for k in range(2 * running):
        engine.add_request(str(k), 64 + (k * 37) % 900, 4000)
    for _ in range(10_000):
        if engine.stats().running >= running:
            break
        engine.step()
    else:
        raise RuntimeError(f"policy {policy!r} never ran {running} requests at once")
    snap = engine.snapshot()
    pol = engine.policy
    candidate = snap.waiting[0]
    start = time.perf_counter()
    for _ in range(repeats):
        snap = engine.snapshot()
        pol.plan(snap)
        pol.can_admit(
            snap.free_blocks, snap.total_blocks, snap.block_size, snap.running, candidate, snap.now
        )
    return (time.perf_counter() - start) / repeats
