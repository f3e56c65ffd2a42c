"""The attainment rule (``contract.attainment``) and the engine's sliding window over it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sloserve_engine.contract.attainment import (
    MISSED,
    STALL_BOUND_MS_DEFAULT,
    Attainment,
    ratios,
    request_attainment,
)
from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.contract.slo import SLO
from sloserve_engine.telemetry.attainment import SlidingWindowAttainment

GOLD = SLO(slo_class="gold", ttft_ms=500, tbt_ms=50)


def test_request_meets_both_targets() -> None:
    # TTFT 0.4 s, 11 tokens over 0.5 s after the first: 50 ms mean.
    assert request_attainment(GOLD, 10.0, 10.4, 10.9, 11, 0.05) == Attainment(ttft=True, tbt=True)


def test_late_first_token_misses_ttft_only() -> None:
    assert request_attainment(GOLD, 0.0, 0.6, 0.7, 3, 0.05) == Attainment(ttft=False, tbt=True)


def test_slow_decode_misses_tbt_only() -> None:
    att = request_attainment(GOLD, 0.0, 0.1, 1.1, 11, 0.1)  # 100 ms per token
    assert att == Attainment(ttft=True, tbt=False)
    assert not att.both


def test_single_token_answer_has_no_tbt_to_miss() -> None:
    assert request_attainment(GOLD, 0.0, 0.2, 0.2, 1, 0.0).tbt


def test_frozen_stream_meets_the_mean_but_not_strict() -> None:
    # 11 tokens, 50 ms mean after the first, but one gap of 0.3 s: the mean hides it.
    att = request_attainment(GOLD, 0.0, 0.1, 0.6, 11, max_gap_s=0.3)
    assert att.both and not att.strict
    assert request_attainment(GOLD, 0.0, 0.1, 0.6, 11, 0.3, stall_bound_s=0.3).strict


def test_default_stall_bound_is_the_knob_default() -> None:
    assert Knobs().stall_bound_ms == STALL_BOUND_MS_DEFAULT == 200.0
    assert Knobs().stall_bound_s == 0.2
    assert Knobs(stall_bound_ms=500).stall_bound_s == 0.5
    with pytest.raises(ValueError, match=r"stallBoundMs|stall_bound_ms"):
        Knobs.model_validate({"stallBoundMs": 0})


def test_unfinished_requests_are_misses_of_every_kind() -> None:
    done = request_attainment(GOLD, 0.0, 0.1, 0.6, 11, 0.05)
    r = ratios([done, MISSED, MISSED, done])
    assert (r.standard, r.strict, r.requests) == (0.5, 0.5, 4)
    assert not (MISSED.both or MISSED.strict or MISSED.ttft)


def test_empty_window_reports_full_attainment_and_zero_requests() -> None:
    ratios = SlidingWindowAttainment(10.0).ratios(now=100.0)
    assert (ratios.ttft, ratios.both, ratios.strict, ratios.requests) == (1.0, 1.0, 1.0, 0)


def test_window_counts_each_kind_and_forgets_old_requests() -> None:
    w = SlidingWindowAttainment(10.0)
    w.add(1.0, Attainment(ttft=False, tbt=False))
    w.add(5.0, Attainment(ttft=True, tbt=False))
    w.add(9.0, Attainment(ttft=True, tbt=True))
    w.add(9.5, Attainment(ttft=True, tbt=True, steady=False))
    r = w.ratios(now=9.5)
    assert (r.ttft, r.tbt, r.both, r.strict, r.requests) == (3 / 4, 2 / 4, 2 / 4, 1 / 4, 4)
    r = w.ratios(now=11.0)  # the request finished at 1.0 is now outside (1.0, 11.0]
    assert (r.ttft, r.tbt, r.both, r.strict, r.requests) == (1.0, 2 / 3, 2 / 3, 1 / 3, 3)
    assert w.ratios(now=100.0).requests == 0


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window_s"):
        SlidingWindowAttainment(0.0)


@given(
    st.lists(
        st.tuples(st.floats(0, 100), st.booleans(), st.booleans(), st.booleans()),
        min_size=1,
        max_size=50,
    ),
    st.floats(0, 200),
)
def test_window_matches_brute_force(
    events: list[tuple[float, bool, bool, bool]], now: float
) -> None:
    events.sort()
    w = SlidingWindowAttainment(30.0)
    for t, ttft, tbt, steady in events:
        w.add(t, Attainment(ttft, tbt, steady))
    inside = [(a, b, c) for t, a, b, c in events if now - 30.0 < t]
    r = w.ratios(now)
    assert r.requests == len(inside)
    if inside:
        assert r.both == pytest.approx(sum(a and b for a, b, _ in inside) / len(inside))
        assert r.strict == pytest.approx(sum(a and b and c for a, b, c in inside) / len(inside))
        assert r.ttft == pytest.approx(sum(a for a, _, _ in inside) / len(inside))
