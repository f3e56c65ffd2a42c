"""The sliding-window attainment helper: per-request verdicts and window ageing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sloserve_engine.policy.views import SLOTarget
from sloserve_engine.server.attainment import (
    Attainment,
    SlidingWindowAttainment,
    request_attainment,
)

SLO = SLOTarget("gold", ttft_s=0.5, tbt_s=0.05)


def test_request_meets_both_targets() -> None:
    # TTFT 0.4 s, 11 tokens over 0.5 s after the first: 50 ms mean.
    assert request_attainment(SLO, 10.0, 10.4, 10.9, 11) == Attainment(ttft=True, tbt=True)


def test_late_first_token_misses_ttft_only() -> None:
    assert request_attainment(SLO, 0.0, 0.6, 0.7, 3) == Attainment(ttft=False, tbt=True)


def test_slow_decode_misses_tbt_only() -> None:
    att = request_attainment(SLO, 0.0, 0.1, 1.1, 11)  # 100 ms per token
    assert att == Attainment(ttft=True, tbt=False)
    assert not att.both


def test_single_token_answer_has_no_tbt_to_miss() -> None:
    assert request_attainment(SLO, 0.0, 0.2, 0.2, 1).tbt


def test_empty_window_reports_full_attainment_and_zero_requests() -> None:
    ratios = SlidingWindowAttainment(10.0).ratios(now=100.0)
    assert (ratios.ttft, ratios.tbt, ratios.both, ratios.requests) == (1.0, 1.0, 1.0, 0)


def test_window_counts_each_kind_and_forgets_old_requests() -> None:
    w = SlidingWindowAttainment(10.0)
    w.add(1.0, Attainment(ttft=False, tbt=False))
    w.add(5.0, Attainment(ttft=True, tbt=False))
    w.add(9.0, Attainment(ttft=True, tbt=True))
    r = w.ratios(now=9.0)
    assert (r.ttft, r.tbt, r.both, r.requests) == (2 / 3, 1 / 3, 1 / 3, 3)
    r = w.ratios(now=11.0)  # the request finished at 1.0 is now outside (1.0, 11.0]
    assert (r.ttft, r.tbt, r.both, r.requests) == (1.0, 0.5, 0.5, 2)
    assert w.ratios(now=100.0).requests == 0


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window_s"):
        SlidingWindowAttainment(0.0)


@given(
    st.lists(st.tuples(st.floats(0, 100), st.booleans(), st.booleans()), min_size=1, max_size=50),
    st.floats(0, 200),
)
def test_window_matches_brute_force(events: list[tuple[float, bool, bool]], now: float) -> None:
    events.sort()
    w = SlidingWindowAttainment(30.0)
    for t, ttft, tbt in events:
        w.add(t, Attainment(ttft, tbt))
    inside = [(a, b) for t, a, b in events if now - 30.0 < t]
    r = w.ratios(now)
    assert r.requests == len(inside)
    if inside:
        assert r.both == pytest.approx(sum(a and b for a, b in inside) / len(inside))
        assert r.ttft == pytest.approx(sum(a for a, _ in inside) / len(inside))
