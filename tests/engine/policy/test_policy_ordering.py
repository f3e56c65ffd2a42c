"""Queue orders: decodes before prefills, victims last, and the admission rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from policy_builders import req

from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy.costmodel import StepCostModel
from sloserve_engine.policy.ordering import (
    AdmitRule,
    OrderingConfig,
    admit_key,
    hopeless_delay,
    order_running,
    order_waiting,
    split_phases,
    start_order,
)
from sloserve_engine.policy.slack import latest_start
from sloserve_engine.policy.views import RequestView

MODEL = StepCostModel(c0_s=0.006, prefill_token_s=2e-5)
NOW = 10.0


def _order(rule: AdmitRule, waiting: list[RequestView], **cfg: float) -> list[str]:
    key = admit_key(OrderingConfig(admit_rule=rule, **cfg), NOW, MODEL, 0.02)
    return [r.request_id for r in order_waiting(waiting, key, len(waiting))]


def test_split_phases() -> None:
    running = [
        req("new", prompt=100, out=0, computed=50),
        req("dec", prompt=100, out=3),
        req("recomputing", prompt=100, out=3, computed=40),
    ]
    decodes, prefills = split_phases(running)
    assert [r.request_id for r in decodes] == ["dec"]
    assert [r.request_id for r in prefills] == ["new", "recomputing"]


@given(
    phases=st.lists(st.booleans(), max_size=30),
    use_key=st.booleans(),
    decodes_first=st.booleans(),
)
def test_running_order_is_a_permutation_with_decodes_first(
    phases: list[bool], use_key: bool, decodes_first: bool
) -> None:
    running = [
        req(f"r{k}", prompt=100, out=0 if pf else 5, computed=10 if pf else None, bound=7 * k % 11)
        for k, pf in enumerate(phases)
    ]
    decodes, prefills = split_phases(running)
    key = (lambda r: (float(r.output_bound),)) if use_key else None
    order = order_running(running, decodes, prefills, key, decodes_first)
    assert sorted(order) == sorted(r.request_id for r in running)
    if decodes_first:
        n_dec = sum(not pf for pf in phases)
        assert {r.request_id for r in running if r.output_tokens} == set(order[:n_dec])
    if use_key and not decodes_first:
        bounds = {r.request_id: r.output_bound for r in running}
        assert [bounds[i] for i in order] == sorted(bounds.values())


def test_fcfs_keeps_queue_order() -> None:
    waiting = [req("b", arrival=5.0), req("a", arrival=1.0)]
    assert _order(AdmitRule.FCFS, waiting) == ["b", "a"]


@pytest.mark.parametrize(
    ("waiting", "expected"),
    [
        pytest.param(
            [req("late", arrival=9.5), req("early", arrival=9.2)],
            ["early", "late"],
            id="earliest-deadline-first",
        ),
        pytest.param(
            [req("hopeless", arrival=5.0), req("feasible", arrival=9.5)],
            ["feasible", "hopeless"],
            id="hopeless-after-feasible",
        ),
        pytest.param(
            [req("feasible", arrival=9.9), req("aged", arrival=1.0)],
            ["aged", "feasible"],
            id="ageing-hopeless-waited-longer-than-delay",
        ),
        pytest.param(
            [req("new", arrival=9.9), req("resumed", arrival=8.0, out=5, computed=0)],
            ["resumed", "new"],
            id="preempted-first",
        ),
        pytest.param(
            [
                req("loose", arrival=9.5, slo=SLO(ttft_ms=5000)),
                req("tight", arrival=9.8, slo=SLO(ttft_ms=500)),
            ],
            ["tight", "loose"],
            id="tight-ttft-class-first",
        ),
    ],
)
def test_deadline_rule(waiting: list[RequestView], expected: list[str]) -> None:
    assert _order(AdmitRule.DEADLINE, waiting, hopeless_delay_s=5.0) == expected


def test_class_rule_serves_tight_tbt_first_until_ageing() -> None:
    tight = SLO(slo_class="tight", ttft_ms=1000, tbt_ms=50)
    loose = SLO(slo_class="loose", ttft_ms=1000, tbt_ms=200)
    waiting = [req("loose", arrival=9.5, slo=loose), req("tight", arrival=9.8, slo=tight)]
    assert _order(AdmitRule.CLASS, waiting, class_age_s=5.0) == ["tight", "loose"]
    old = [req("loose", arrival=4.0, slo=loose), req("tight", arrival=9.8, slo=tight)]
    assert _order(AdmitRule.CLASS, old, class_age_s=5.0, hopeless_delay_s=0.0) == [
        "loose",
        "tight",
    ]


def test_ecoserve_rule_kv_holders_then_urgent_then_short() -> None:
    waiting = [
        req("long", prompt=3000, arrival=9.9),
        req("short", prompt=100, arrival=9.9),
        req("urgent", prompt=2000, arrival=9.05),
        req("swapped", prompt=500, arrival=9.9, out=3, computed=0, swapped=500),
    ]
    assert _order(AdmitRule.ECOSERVE, waiting) == ["swapped", "urgent", "short", "long"]


def test_slack_rule_resumes_paused_streams_before_new_requests() -> None:
    # Preempted after 100 tokens in 1 s: it banked ~9 s of TPOT slack, but its user
    # watches a frozen stream, so it goes before the new request whose TTFT is due
    # (issue 5: ordering it by slack froze streams for seconds). Paused streams
    # among themselves: least slack first.
    resumed = req(
        "resumed", prompt=100, out=100, computed=0, pred=200, first_token=9.0, arrival=8.9
    )
    urgent = req("urgent", prompt=100, out=50, computed=0, pred=60, first_token=9.0)
    new = req("new", arrival=9.5)
    assert _order(AdmitRule.SLACK, [resumed, new]) == ["resumed", "new"]
    assert _order(AdmitRule.SLACK, [new, resumed, urgent]) == ["urgent", "resumed", "new"]


def test_order_waiting_limits_to_the_best() -> None:
    waiting = [req(f"r{k}", arrival=9.5 + k * 0.01) for k in range(20)]
    key = admit_key(OrderingConfig(), NOW, MODEL, 0.02)
    assert [r.request_id for r in order_waiting(list(reversed(waiting)), key, 3)] == [
        "r0",
        "r1",
        "r2",
    ]
    assert order_waiting(waiting, key, 0) == []


@pytest.mark.parametrize(
    ("load", "exponent", "expected"),
    [
        pytest.param(0.3, 0.0, 5.0, id="exponent-0-is-constant"),
        pytest.param(0.3, 2.0, 5.0 * 0.09, id="burst-on-a-lightly-loaded-engine"),
        pytest.param(0.9, 2.0, 5.0 * 0.81, id="sustained-near-capacity"),
        pytest.param(1.7, 2.0, 5.0, id="overload-caps-at-the-full-delay"),
        pytest.param(-1.0, 2.0, 0.0, id="no-negative-delay"),
    ],
)
def test_hopeless_delay_scales_with_sustained_load(
    load: float, exponent: float, expected: float
) -> None:
    config = OrderingConfig(hopeless_delay_s=5.0, hopeless_load_exponent=exponent)
    assert hopeless_delay(config, load) == pytest.approx(expected)


def test_hopeless_request_overtakes_newer_work_sooner_at_light_load() -> None:
    # Issue 14 (azure-code on the GPU): a 15-token prompt that missed its deadline in a
    # burst went behind every request of the burst (TTFT 3.96 s; stock 0.93 s).
    late = req("late", prompt=15, arrival=8.5)  # TTFT deadline 9.5 s < NOW: hopeless
    newer = [req(f"n{k}", prompt=2000, arrival=9.2 + 0.2 * k) for k in range(4)]
    config = OrderingConfig(admit_rule=AdmitRule.SLACK, hopeless_load_exponent=2.0)

    def order(load: float) -> list[str]:
        key = admit_key(config, NOW, MODEL, 0.02, load)
        return [r.request_id for r in order_waiting([late, *newer], key, 5)]

    assert order(1.0)[-1] == "late"  # sustained overload: deferred by the full 5 s
    assert order(0.3)[0] == "late"  # a burst: deferred by 0.45 s, still first


def test_slack_rule_start_lead_moves_new_requests_earlier() -> None:
    # With vLLM's async batch queue a planned prefill ends ~2 steps after the plan, so
    # a request is due start_lead_steps token intervals before its prefill-only deadline.
    a = req("a", prompt=100, arrival=9.0)
    assert latest_start(a, MODEL, 0.05, 2 * 0.05) == pytest.approx(
        latest_start(a, MODEL, 0.05) - 0.1
    )
    # A's prefill-only latest start is 10.05 s, B's 10.2 s; NOW is 10 s and a token
    # interval 50 ms. With the lead A is already hopeless and yields to B.
    a_due = req("A", prompt=10, arrival=9.0562)
    b_due = req("B", prompt=10, arrival=9.2062)

    def order(lead_steps: float) -> list[str]:
        config = OrderingConfig(admit_rule=AdmitRule.SLACK, start_lead_steps=lead_steps)
        key = admit_key(config, NOW, MODEL, 0.05)
        return [r.request_id for r in order_waiting([b_due, a_due], key, 2)]

    assert order(0.0) == ["A", "B"]
    assert order(2.0) == ["B", "A"]


@given(
    reqs=st.lists(
        st.tuples(
            st.integers(1, 4000),
            st.floats(8.0, 10.0),
            st.sampled_from([250.0, 1000.0, 5000.0]),
            st.booleans(),
        ),
        max_size=20,
    ),
    load=st.floats(0.0, 2.0),
)
def test_start_order_is_the_slack_rules_admission_order(
    reqs: list[tuple[int, float, float, bool]], load: float
) -> None:
    # What the engine publishes for routers (a start deadline per waiting request) puts the
    # waiting requests in the order the policy admits them, paused streams first.
    config = OrderingConfig(admit_rule=AdmitRule.SLACK, hopeless_load_exponent=2.0)
    waiting = [
        req(
            f"r{k}",
            prompt=p,
            arrival=a,
            slo=SLO(ttft_ms=ttft),
            **({"out": 5, "computed": 0, "first_token": a + 0.1} if paused else {}),
        )
        for k, (p, a, ttft, paused) in enumerate(reqs)
    ]
    due = start_order(config, NOW, MODEL, 0.02, load)
    key = admit_key(config, NOW, MODEL, 0.02, load)
    assert due is not None and key is not None
    admitted = [r.request_id for r in order_waiting(waiting, key, len(waiting))]
    paused = {r.request_id for r in waiting if due(r) == float("-inf")}
    assert paused == {r.request_id for r in waiting if r.output_tokens > 0}
    new = sorted((r for r in waiting if r.request_id not in paused), key=lambda r: due(r))
    assert admitted[len(paused) :] == [r.request_id for r in new]


@pytest.mark.parametrize("rule", [r for r in AdmitRule if r is not AdmitRule.SLACK])
def test_only_the_slack_rule_publishes_a_start_order(rule: AdmitRule) -> None:
    # Any other order is not by start deadline: a new request counts every waiting one.
    assert start_order(OrderingConfig(admit_rule=rule), NOW, MODEL, 0.02, 1.0) is None
