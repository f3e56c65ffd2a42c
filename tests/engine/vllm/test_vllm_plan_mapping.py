"""Each StepPlan decision lands in vLLM as views.py says (a scripted policy asks for them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from vllm.v1.core.kv_cache_manager import KVCacheManager
from vllm_adapter_helpers import Arrival, assert_all_done, make_engine

from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.policy.views import (
    ArrivalInfo,
    EngineSnapshot,
    FinishedInfo,
    Prediction,
    PreemptionMode,
    RequestView,
    StepPlan,
)
from sloserve_engine.vllm.scheduler import SLOScheduler, SLOSyncScheduler

pytestmark = pytest.mark.vllm


@dataclass
class ScriptedPolicy:
    """Reorders, holds back, shrinks the budget, caps chunks, refuses and asks for swaps."""

    name: str = "vllm"
    knobs: Knobs = field(default_factory=Knobs)
    reverse_running: bool = False
    """Serve the newest request first (so the oldest is the victim)."""
    hold: set[str] = field(default_factory=set)
    admit_reversed: bool = False
    budget: int | None = None
    chunk_cap: int = 0
    refuse: set[str] = field(default_factory=set)
    mode: PreemptionMode = PreemptionMode.RECOMPUTE
    plans: list[tuple[EngineSnapshot, StepPlan]] = field(default_factory=list)
    admit_calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    victims: list[str] = field(default_factory=list)
    finished: list[FinishedInfo] = field(default_factory=list)

    def set_knobs(self, knobs: Knobs) -> None:
        self.knobs = knobs

    def on_arrival(self, info: ArrivalInfo) -> Prediction:
        return Prediction(info.max_output_tokens // 2, info.max_output_tokens)

    def on_finish(self, info: FinishedInfo) -> None:
        self.finished.append(info)

    def plan(self, snapshot: EngineSnapshot) -> StepPlan:
        by_age = sorted(snapshot.running, key=lambda r: (r.arrival_time, r.request_id))
        running = [r.request_id for r in by_age]
        waiting = [r.request_id for r in snapshot.waiting if r.request_id not in self.hold]
        plan = StepPlan(
            running_order=tuple(reversed(running) if self.reverse_running else running),
            admit_order=tuple(reversed(waiting) if self.admit_reversed else waiting),
            token_budget=self.budget or snapshot.max_num_batched_tokens,
            prefill_chunk_cap=self.chunk_cap,
        )
        self.plans.append((snapshot, plan))
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
        self.admit_calls.append((candidate.request_id, tuple(r.request_id for r in running)))
        return candidate.request_id not in self.refuse

    def preemption_mode(self, victim: RequestView) -> PreemptionMode:
        self.victims.append(victim.request_id)
        return self.mode


TWO_GROWING = [Arrival("A", 64, 100), Arrival("B", 64, 100, step=1)]
"""Two requests that outgrow a 12-block cache: one must be preempted."""


@pytest.mark.parametrize("reverse", [False, True], ids=["vllm-order", "reversed"])
def test_victim_is_the_last_of_the_running_order(tiny_model_dir: Path, reverse: bool) -> None:
    policy = ScriptedPolicy(reverse_running=reverse)
    engine = make_engine(SLOSyncScheduler, tiny_model_dir, asynchronous=False, num_blocks=13)
    engine.scheduler.set_policy(policy)
    engine.run(TWO_GROWING)
    first_preempted = next(
        r.preempted_request_ids for r in engine.driver.records if r.preempted_request_ids
    )
    assert first_preempted == (["A"] if reverse else ["B"])
    assert policy.victims[0] == first_preempted[0]
    assert_all_done(engine.driver, engine.spec, TWO_GROWING)


def test_holdback_and_admission_order(tiny_model_dir: Path) -> None:
    policy = ScriptedPolicy(hold={"r0"}, admit_reversed=True)
    engine = make_engine(SLOSyncScheduler, tiny_model_dir, asynchronous=False)
    engine.scheduler.set_policy(policy)
    arrivals = [Arrival(f"r{i}", 20, 4) for i in range(3)]

    def release(step: int) -> None:
        if step == 5:
            policy.hold.clear()

    engine.run(arrivals, before_step=release)
    first = engine.driver.records[0]
    assert first.new_request_ids == ["r2", "r1"], "admitted in the plan's order, r0 held back"
    admitted_r0 = next(r.index for r in engine.driver.records if "r0" in r.new_request_ids)
    assert admitted_r0 == 5, "a held-back request is admitted at the first step that allows it"
    assert_all_done(engine.driver, engine.spec, arrivals)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async-depth2"])
def test_budget_and_chunk_cap_bound_every_step(tiny_model_dir: Path, asynchronous: bool) -> None:
    policy = ScriptedPolicy(budget=40, chunk_cap=24)
    cls = SLOScheduler if asynchronous else SLOSyncScheduler
    engine = make_engine(cls, tiny_model_dir, asynchronous=asynchronous)
    engine.scheduler.set_policy(policy)
    arrivals = [Arrival("A", 100, 5), Arrival("B", 70, 5), Arrival("C", 10, 5)]
    engine.run(arrivals)
    records = engine.driver.records
    assert all(sum(r.num_scheduled_tokens.values()) <= 40 for r in records)
    assert all(n <= 24 for r in records for n in r.num_scheduled_tokens.values())
    assert records[0].num_scheduled_tokens == {"A": 24, "B": 16}
    assert engine.scheduler.max_num_scheduled_tokens == 64, "vLLM's own budget is restored"
    assert engine.scheduler.scheduler_config.long_prefill_token_threshold == 0
    assert_all_done(engine.driver, engine.spec, arrivals)


def test_refused_admission_stops_admissions_for_the_step(tiny_model_dir: Path) -> None:
    policy = ScriptedPolicy(refuse={"r1"})
    engine = make_engine(SLOSyncScheduler, tiny_model_dir, asynchronous=False)
    engine.scheduler.set_policy(policy)
    arrivals = [Arrival(f"r{i}", 10, 3) for i in range(3)]

    def release(step: int) -> None:
        if step == 4:
            policy.refuse.clear()

    engine.run(arrivals, before_step=release)
    records = engine.driver.records
    assert records[0].new_request_ids == ["r0"], "head-of-line: r2 waits behind refused r1"
    assert all(not r.new_request_ids for r in records[1:4])
    assert records[4].new_request_ids == ["r1", "r2"]
    assert ("r1", ("r0",)) in policy.admit_calls, "can_admit sees the running set at that moment"
    assert engine.scheduler.sloserve_stats.admissions_refused >= 4
    allocate = engine.scheduler.kv_cache_manager.allocate_slots
    assert allocate.__func__ is KVCacheManager.allocate_slots, "the gate is off between steps"
    assert_all_done(engine.driver, engine.spec, arrivals)


def test_swap_without_offload_connector_recomputes(tiny_model_dir: Path) -> None:
    policy = ScriptedPolicy(mode=PreemptionMode.SWAP)
    engine = make_engine(SLOSyncScheduler, tiny_model_dir, asynchronous=False, num_blocks=13)
    engine.scheduler.set_policy(policy)
    engine.run(TWO_GROWING)
    stats = engine.scheduler.sloserve_stats
    assert stats.preemptions[PreemptionMode.SWAP] == 0
    assert stats.preemptions[PreemptionMode.RECOMPUTE] == stats.swap_unavailable > 0
    assert_all_done(engine.driver, engine.spec, TWO_GROWING)


def test_views_hide_max_tokens_and_carry_slo_and_predictions(tiny_model_dir: Path) -> None:
    policy = ScriptedPolicy()
    engine = make_engine(SLOSyncScheduler, tiny_model_dir, asynchronous=False)
    engine.scheduler.set_policy(policy)
    arrivals = [
        Arrival("A", 30, 7, extra_args={"slo_class": "interactive", "ttft_ms": 250, "tbt_ms": 40}),
        Arrival("B", 30, 7),
    ]
    engine.run(arrivals)
    snapshot, _ = policy.plans[1]
    views = {v.request_id: v for v in (*snapshot.running, *snapshot.waiting)}
    a, b = views["A"], views["B"]
    assert (a.slo.slo_class, a.slo.ttft_s, a.slo.tbt_s) == ("interactive", 0.25, 0.04)
    assert b.slo == engine.scheduler.sloserve_policy.knobs.slo_defaults
    assert a.max_output_tokens == 512 - 30, "model-wide cap, never the request's max_tokens"
    assert (a.predicted_output, a.output_bound) == (241, 482)
    assert snapshot.total_blocks == engine.spec.num_blocks - 1
    assert a.blocks_held == 2 and a.computed_tokens == 30
    assert {f.output_tokens for f in policy.finished} == {7}
    assert [f.predicted_output for f in policy.finished] == [241, 241]


def test_unusable_slo_falls_back_to_defaults_without_failing(tiny_model_dir: Path) -> None:
    policy = ScriptedPolicy()
    engine = make_engine(SLOSyncScheduler, tiny_model_dir, asynchronous=False)
    engine.scheduler.set_policy(policy)
    arrivals = [Arrival("A", 30, 3, extra_args={"slo_class": "chat", "ttft_ms": "fast"})]
    engine.run(arrivals)
    snapshot, _ = policy.plans[0]
    assert snapshot.waiting[0].slo == policy.knobs.slo_defaults
    assert engine.scheduler.sloserve_stats.invalid_slo == 1
    assert_all_done(engine.driver, engine.spec, arrivals)
