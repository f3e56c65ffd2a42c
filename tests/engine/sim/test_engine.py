"""SimEngine step semantics on small, hand-checkable cases (vLLM 0.26.0 schedule())."""

from __future__ import annotations

import dataclasses

import pytest

from sloserve_engine.policy.costmodel import StepCostModel
from sloserve_engine.policy.views import PreemptionMode, RequestView
from sloserve_engine.policy.vllm_fcfs import VllmFcfsPolicy
from sloserve_engine.sim import SimConfig, SimEngine, SimProfile

PROFILE = SimProfile(
    StepCostModel(c0_s=0.005, prefill_token_s=1e-5, decode_seq_s=1e-5, cpu_per_step_s=1e-3),
    async_hidden_step_s=0.001,
)


def engine(scheduling: str = "sync", **kw: int) -> SimEngine:
    cfg = SimConfig(scheduling=scheduling, **kw)  # type: ignore[arg-type]
    return SimEngine(VllmFcfsPolicy(), PROFILE, cfg)


def test_views_equal_the_dataclass_constructor() -> None:
    eng = engine()
    eng.add_request("a", 40, 3)
    eng.step()
    view = eng.request_view("a")
    assert view is not None
    rebuilt = RequestView(**{f.name: getattr(view, f.name) for f in dataclasses.fields(view)})
    assert view == rebuilt
    assert (view.prompt_tokens, view.output_tokens, view.computed_tokens, view.blocks_held) == (
        40,
        1,
        40,
        3,
    )


def test_null_block_is_not_usable() -> None:
    assert SimConfig(kv_tokens=97_488).usable_blocks == 6092


def test_sync_step_time_is_cpu_gap_plus_gpu_time() -> None:
    eng = engine()
    eng.add_request("a", 100, 2)
    res = eng.step()
    assert res.prefill_tokens == 100 and res.emitted == ["a"]
    assert res.duration == pytest.approx(1e-3 + 0.005 + 100 * 1e-5)
    res = eng.step()
    assert res.decode_tokens == 1 and res.finished == ["a"]
    assert eng.stats().free_blocks == eng.stats().total_blocks


def test_budget_chunks_a_long_prompt() -> None:
    eng = engine(max_num_batched_tokens=64)
    eng.add_request("a", 150, 1)
    assert [eng.step().prefill_tokens for _ in range(3)] == [64, 64, 22]
    assert not eng.has_unfinished


def test_full_prompt_must_fit_and_head_of_line_blocks() -> None:
    # 5 usable blocks = 80 tokens: "a" (70) fits, "b" (20) would fit its first chunk but
    # not its whole prompt next to "a", and "c" behind it waits too (head of line).
    eng = engine(kv_tokens=96)
    eng.add_request("a", 70, 5)
    eng.add_request("b", 20, 1)
    eng.add_request("c", 1, 1)
    res = eng.step()
    assert res.prefill_tokens == 70
    assert [v.request_id for v in eng.snapshot().waiting] == ["b", "c"]


def test_decode_growth_preempts_the_last_admitted_with_recompute() -> None:
    eng = engine(kv_tokens=16 * 5)  # 4 usable blocks
    eng.add_request("a", 32, 20)
    eng.add_request("b", 31, 20)
    eng.step()  # both prefills: a=2 blocks, b=2 blocks
    preempted: list[tuple[str, PreemptionMode]] = []
    for _ in range(3):
        preempted += eng.step().preempted
    assert preempted == [("b", PreemptionMode.RECOMPUTE)]
    assert eng.stats().preemptions_recompute == 1
    while eng.has_unfinished:
        eng.step()
    assert eng.stats().free_blocks == 4


def test_async_schedules_next_batch_before_outputs_free_blocks() -> None:
    # "a" finishes at the end of step 2; in async mode step 3 (decoding "c") was
    # scheduled while "a" still held its blocks, so "b", which needs them, starts a
    # step later. (An empty next batch is not queued: vLLM then waits for outputs.)
    results = {}
    for mode in ("sync", "async"):
        eng = engine(mode, kv_tokens=16 * 6)  # 5 usable blocks
        eng.add_request("c", 16, 10)
        eng.add_request("a", 32, 2)
        eng.add_request("b", 40, 1)
        steps = 0
        while eng.has_unfinished:
            res = eng.step()
            steps += 1
            if "b" in res.emitted:
                results[mode] = steps
    assert results == {"sync": 3, "async": 4}


def test_rejects_requests_that_can_never_run() -> None:
    eng = engine(kv_tokens=16 * 4)
    with pytest.raises(ValueError, match="whole cache"):
        eng.add_request("x", 60, 1)
    with pytest.raises(ValueError, match="max_model_len"):
        engine().add_request("y", 8000, 500)
    eng.add_request("z", 1, 1)
    with pytest.raises(ValueError, match="duplicate"):
        eng.add_request("z", 1, 1)


def test_abort_frees_blocks() -> None:
    eng = engine()
    eng.add_request("a", 100, 50)
    eng.step()
    assert eng.abort_request("a")
    assert eng.stats().free_blocks == eng.stats().total_blocks
    assert not eng.abort_request("a")
