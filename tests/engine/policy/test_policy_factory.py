"""make_policy: every published name builds a policy that answers every protocol call."""

from __future__ import annotations

import pytest

from sloserve_engine.contract.knobs import POLICY_NAMES, Knobs
from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy import make_policy
from sloserve_engine.policy.views import (
    ArrivalInfo,
    EngineSnapshot,
    PreemptionMode,
    RequestView,
    StepPlan,
)


def _snapshot(waiting: tuple[RequestView, ...], running: tuple[RequestView, ...]) -> EngineSnapshot:
    return EngineSnapshot(
        now=1.0,
        block_size=16,
        total_blocks=6093,
        free_blocks=5000,
        max_num_batched_tokens=8192,
        max_num_seqs=256,
        running=running,
        waiting=waiting,
    )


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_every_name_plans_a_valid_step(name: str) -> None:
    policy = make_policy(name)
    assert policy.name == name
    pred = policy.on_arrival(ArrivalInfo("w", 0.5, 500, SLO(), 7000))
    assert 1 <= pred.predicted_output <= pred.output_bound <= 7000
    waiting = RequestView(
        "w", 0.5, 500, 0, 0, 0, SLO(), pred.predicted_output, pred.output_bound, 7000
    )
    running = RequestView("r", 0.0, 300, 10, 310, 20, SLO(), 200, 400, 7000)
    plan = policy.plan(_snapshot((waiting,), (running,)))
    assert isinstance(plan, StepPlan)
    assert plan.running_order == ("r",)
    assert plan.admit_order == ("w",)
    assert 1 <= plan.token_budget <= 8192
    assert policy.can_admit(5000, 6093, 16, (running,), waiting, 1.0)
    assert isinstance(policy.preemption_mode(running), PreemptionMode)


def test_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown policy 'fifo'"):
        make_policy("fifo")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        pytest.param(PreemptionMode.SWAP, PreemptionMode.SWAP, id="forced-swap"),
        pytest.param(PreemptionMode.RECOMPUTE, PreemptionMode.RECOMPUTE, id="forced-recompute"),
    ],
)
@pytest.mark.parametrize("name", POLICY_NAMES)
def test_preemption_mode_knob_forces_the_mode(
    name: str, mode: PreemptionMode, expected: PreemptionMode
) -> None:
    policy = make_policy(name, Knobs(preemption_mode=mode))
    victim = RequestView("r", 0.0, 300, 10, 310, 20, SLO(), 200, 400, 7000)
    assert policy.preemption_mode(victim) is expected


def test_vllm_policy_recomputes_like_stock_unless_a_mode_is_named() -> None:
    victim = RequestView("r", 0.0, 300, 10, 310, 20, SLO(), 200, 400, 7000)
    assert make_policy("vllm").preemption_mode(victim) is PreemptionMode.RECOMPUTE


def test_set_knobs_changes_the_next_plan() -> None:
    policy = make_policy("sloserve")
    running = RequestView("r", 0.0, 300, 10, 310, 20, SLO(), 200, 400, 7000)
    before = policy.plan(_snapshot((), (running,))).token_budget
    policy.set_knobs(Knobs(chunk_max_tokens=256))
    after = policy.plan(_snapshot((), (running,))).token_budget
    assert before > 256 >= after - 1
