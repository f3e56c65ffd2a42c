"""The named policies as wholes: plan invariants, learning, knobs, and each paper's signature."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_builders import req, snapshot

from sloserve_engine.contract.knobs import DEFAULT_KNOBS, POLICY_NAMES, Knobs
from sloserve_engine.policy import make_policy
from sloserve_engine.policy.composed import ComposedPolicy
from sloserve_engine.policy.costmodel import StepCostModel, attention_pairs
from sloserve_engine.policy.views import (
    SLO,
    ArrivalInfo,
    FinishedInfo,
    RequestView,
)

MODEL = StepCostModel(c0_s=0.006, prefill_token_s=2e-5, decode_seq_s=1.4e-5, decode_ctx_s=4e-8)


def _composed(name: str, knobs: Knobs = DEFAULT_KNOBS) -> ComposedPolicy:
    policy = make_policy(name, knobs, MODEL)
    assert isinstance(policy, ComposedPolicy)
    return policy


_running = st.lists(
    st.tuples(st.integers(1, 3000), st.integers(0, 500), st.integers(1, 900), st.booleans()),
    max_size=40,
)
_waiting = st.lists(st.tuples(st.integers(1, 3000), st.floats(0.0, 10.0)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(POLICY_NAMES),
    running=_running,
    waiting=_waiting,
    spare=st.integers(0, 3000),
    chunk=st.tuples(st.integers(1, 512), st.integers(0, 8192)),
)
def test_plans_are_well_formed(
    name: str,
    running: list[tuple[int, int, int, bool]],
    waiting: list[tuple[int, float]],
    spare: int,
    chunk: tuple[int, int],
) -> None:
    run = tuple(
        req(f"r{k}", prompt=p, out=0 if pf else o + 1, computed=p // 2 if pf else None, bound=b)
        for k, (p, o, b, pf) in enumerate(running)
    )
    wait = tuple(req(f"w{k}", prompt=p, arrival=a, bound=300) for k, (p, a) in enumerate(waiting))
    held = sum(r.blocks_held for r in run)
    snap = snapshot(run, wait, total_blocks=held + spare, free_blocks=spare)
    knobs = Knobs(chunk_min_tokens=chunk[0], chunk_max_tokens=chunk[0] + chunk[1])
    plan = make_policy(name, knobs, MODEL).plan(snap)
    assert sorted(plan.running_order) == sorted(r.request_id for r in run)
    assert len(set(plan.admit_order)) == len(plan.admit_order)
    assert set(plan.admit_order) <= {r.request_id for r in wait}
    assert 1 <= plan.token_budget <= snap.max_num_batched_tokens
    if name != "vllm":
        assert plan.token_budget <= knobs.chunk_max_tokens + len(run)
    assert plan.prefill_chunk_cap == 0 or (
        knobs.chunk_min_tokens <= plan.prefill_chunk_cap <= knobs.chunk_max_tokens
    )


@pytest.mark.parametrize("name", ["ecoserve", "cacheopt", "sloserve"])
def test_predictor_learns_from_finished_requests(name: str) -> None:
    policy = _composed(name)
    for k in range(200):
        policy.on_finish(FinishedInfo(f"f{k}", 100, 50, SLO(), 256, float(k)))
    pred = policy.on_arrival(ArrivalInfo("a", 300.0, 100, SLO(), 4000))
    assert pred.predicted_output == 50
    assert pred.output_bound == 50


def test_accelgen_predicts_nothing() -> None:
    pred = _composed("accelgen").on_arrival(ArrivalInfo("a", 0.0, 100, SLO(), 4000))
    assert pred.output_bound == pred.predicted_output == 4000


def test_confidence_drops_as_arrivals_speed_up() -> None:
    policy = _composed("cacheopt")
    for k in range(10):
        policy.on_arrival(ArrivalInfo(f"a{k}", k * 1.0, 100, SLO(), 4000))
    assert policy.capacity.rate is None  # the capacity needs the engine's KV size
    policy.plan(snapshot())  # ... which the first plan brings (issue 14: no 17 req/s)
    assert policy.capacity.rate is not None
    slow = policy.confidence(10.0)
    for k in range(600):
        policy.on_arrival(ArrivalInfo(f"b{k}", 10.0 + k * 0.05, 100, SLO(), 4000))
    assert policy.confidence(40.0) < slow


def test_ecoserve_ignores_the_confidence_knob() -> None:
    policy = _composed("ecoserve", Knobs(predictor_confidence=0.99))
    assert policy.confidence(0.0) == 0.5


@pytest.mark.parametrize("name", ["accelgen", "sloserve"])
def test_dynamic_chunking_keeps_the_step_within_the_tightest_tbt(name: str) -> None:
    tight = SLO(slo_class="tight", tbt_ms=50)
    run = (req("a", prompt=500, out=10), req("b", prompt=800, out=3, slo=tight))
    plan = _composed(name).plan(snapshot(run, (req("w", prompt=6000),)))
    prefill = plan.token_budget - 2
    assert 64 <= prefill < 8190
    assert MODEL.gpu_step_s(prefill, prefill, 2, 1313) <= 0.95 * 0.05


@pytest.mark.parametrize("name", ["ecoserve", "cacheopt"])
def test_fixed_budget_policies_use_the_whole_budget(name: str) -> None:
    run = (req("a", prompt=500, out=10),)
    assert _composed(name).plan(snapshot(run)).token_budget == 8192


def _tight_kv_snapshot() -> tuple[RequestView, ...]:
    return (
        req("cheap-loose", prompt=100, out=5, bound=900, slo=SLO(tbt_ms=500)),
        req("costly-tight", prompt=3000, out=5, bound=20, slo=SLO(tbt_ms=50)),
        req("middle", prompt=1000, out=5, bound=300),
    )


def test_victim_scoring_puts_the_best_victim_last() -> None:
    run = _tight_kv_snapshot()
    order = _composed("cacheopt").plan(snapshot(run, free_blocks=0)).running_order
    assert order == ("costly-tight", "middle", "cheap-loose")


def test_victim_order_is_untouched_when_no_preemption_can_happen() -> None:
    run = _tight_kv_snapshot()
    order = _composed("cacheopt").plan(snapshot(run, free_blocks=500)).running_order
    assert order == tuple(r.request_id for r in run)


def test_reservation_holds_back_what_would_overrun_the_cache() -> None:
    # One running request that will grow to 50 blocks; 60 free; reserve 5% of 100 = 5.
    run = (req("r", prompt=160, out=1, computed=160, blocks=10, bound=640),)
    small = req("small", prompt=16, bound=16)
    big = req("big", prompt=320, bound=320)
    for name in ("ecoserve", "cacheopt"):
        policy = _composed(name)
        assert policy.can_admit(60, 100, 16, run, small, 10.0), name
        assert not policy.can_admit(60, 100, 16, run, big, 10.0), name
    # vllm and sloserve (above its reserve) admit whatever vLLM can fit.
    for name in ("vllm", "sloserve"):
        assert make_policy(name).can_admit(60, 100, 16, run, big, 10.0), name


def test_reservation_ratio_knob_applies_live() -> None:
    policy = _composed("cacheopt")
    cand = req("c", prompt=16, bound=16)
    assert policy.can_admit(20, 100, 16, (), cand, 0.0)
    policy.set_knobs(Knobs(reservation_ratio=0.3))
    assert not policy.can_admit(20, 100, 16, (), cand, 0.0)


def test_plan_exports_chunk_and_reserved_blocks() -> None:
    run = (req("r", prompt=160, out=1, computed=160, blocks=10, bound=640),)
    notes = dict(_composed("cacheopt").plan(snapshot(run)).notes)
    assert notes["reserved_blocks"] == 50 + 40  # 5% of 1000 blocks + r's growth to its bound
    assert notes["chunk_tokens"] > 0
    sloserve = dict(_composed("sloserve", Knobs(reservation_ratio=0.02)).plan(snapshot(run)).notes)
    assert sloserve["reserved_blocks"] == 20  # reserve only: no per-request reservations


def test_sloserve_keeps_the_reserve_for_streams() -> None:
    running = (req("r", prompt=160, out=1, computed=160, blocks=10, bound=640),)
    new = req("c", prompt=160, bound=16)
    paused = req("p", prompt=150, out=10, computed=0, blocks=0, bound=16, first_token=9.0)
    policy = _composed("sloserve", Knobs(reservation_ratio=0.5))
    assert not policy.can_admit(55, 100, 16, running, new, 10.0)
    assert policy.can_admit(55, 100, 16, running, paused, 10.0)
    policy.set_knobs(Knobs(reservation_ratio=0.0))
    assert policy.can_admit(55, 100, 16, running, new, 10.0)


def test_sloserve_resumes_a_paused_stream_before_any_new_request() -> None:
    # The paused stream banked seconds of TPOT slack and the new request's TTFT is
    # due, yet the stream goes first; when it does not fit, nobody is admitted
    # past it (backfill would otherwise hand its blocks to new requests).
    paused = req("paused", prompt=1500, out=100, computed=0, blocks=0, pred=200, first_token=5.0)
    new = req("new", prompt=100, arrival=9.5)
    policy = _composed("sloserve", Knobs(reservation_ratio=0.0))
    assert policy.plan(snapshot((), (new, paused))).admit_order == ("paused", "new")
    tight = snapshot((), (new, paused), total_blocks=1000, free_blocks=50)
    assert policy.plan(tight).admit_order == ()


@pytest.mark.parametrize("name", ["cacheopt", "accelgen", "sloserve"])  # ecoserve: no reserve
def test_kv_full_for_new_requests_admits_only_paused_streams(name: str) -> None:
    # 30 free blocks, 10% reserve (100): no new request fits, the paused stream does.
    paused = req("paused", prompt=150, out=10, computed=0, blocks=0, first_token=5.0)
    new = tuple(req(f"n{k}", prompt=16, arrival=9.0 + k / 100) for k in range(40))
    snap = snapshot((), (*new, paused), total_blocks=1000, free_blocks=30)
    plan = _composed(name, Knobs(reservation_ratio=0.1)).plan(snap)
    assert plan.admit_order == ("paused",)
    no_paused = snapshot((), new, total_blocks=1000, free_blocks=30)
    assert _composed(name, Knobs(reservation_ratio=0.1)).plan(no_paused).admit_order == ()


def test_banked_tpot_time_buys_longer_chunks() -> None:
    # 200 tokens in 2 s against 0.1 s/token: 18 s banked, so sloserve may take
    # a step of up to 1.5 x 0.1 s; accelgen stays at 0.1 s.
    run = (req("a", prompt=500, out=200, first_token=8.0),)
    snap = snapshot(run, (req("w", prompt=8000),))
    sloserve = _composed("sloserve").plan(snap).token_budget - 1
    accelgen = _composed("accelgen").plan(snap).token_budget - 1
    assert MODEL.gpu_step_s(accelgen, accelgen, 1, 700) <= 0.095
    assert 0.095 < MODEL.gpu_step_s(sloserve, sloserve, 1, 700) <= 1.5 * 0.095


def test_predictor_confidence_knob_moves_the_bound() -> None:
    policy = _composed("cacheopt")
    for k in range(1, 201):
        policy.on_finish(FinishedInfo(f"f{k}", 100, k, SLO(), 100, 0.0))
    bounds = []
    for p in (0.6, 0.95):
        policy.set_knobs(Knobs(predictor_confidence=p))
        bounds.append(policy.on_arrival(ArrivalInfo("a", 0.0, 100, SLO(), 4000)).output_bound)
    assert bounds[0] < bounds[1]


def test_chunks_are_sized_for_the_context_they_attend_to() -> None:
    # Issue 14: on azure-code the GPU ran sloserve's chunk steps at 100-114 ms against a
    # 95 ms target, because chunks were priced as if they started a prompt; 71 requests
    # with short outputs missed the 100 ms TPOT on that alone. A chunk 6,000 tokens into
    # a prompt attends to those 6,000: the step must still fit the target.
    model = StepCostModel(
        c0_s=0.006,
        prefill_token_s=1.8e-5,
        prefill_ctx_s=1.3e-6,
        decode_seq_s=1.7e-5,
        decode_ctx_s=3.4e-8,
        prefill_attn_s=1.4e-9,
    )
    decode = req("d", prompt=500, out=1, first_token=9.95)  # no banked time
    mid = req("mid", prompt=7000, out=0, computed=6000)
    snap = snapshot((decode, mid))
    fresh = snapshot((decode,), (req("w", prompt=7000, arrival=9.9),))
    for name in ("sloserve", "accelgen"):
        chunk = make_policy(name, DEFAULT_KNOBS, model).plan(snap).prefill_chunk_cap
        step = model.gpu_step_s(chunk, 6000 + chunk, 1, 500, attention_pairs(chunk, 6000))
        assert step <= 0.095 + 1e-9
        assert chunk < make_policy(name, DEFAULT_KNOBS, model).plan(fresh).prefill_chunk_cap
