"""``make_request_view`` (the executors' per-step constructor) equals ``RequestView(...)``."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy.views import RequestView, make_request_view

counts = st.integers(min_value=0, max_value=10**6)


@given(
    rid=st.text(min_size=1, max_size=8),
    arrival=st.floats(allow_nan=False, allow_infinity=False),
    numbers=st.tuples(counts, counts, counts, counts, counts, counts, counts, counts, counts),
    first=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    slo_class=st.sampled_from(["chat", "batch"]),
)
def test_fast_view_equals_dataclass_view(
    rid: str,
    arrival: float,
    numbers: tuple[int, int, int, int, int, int, int, int, int],
    first: float | None,
    slo_class: str,
) -> None:
    prompt, output, computed, blocks, predicted, bound, cap, preemptions, swapped = numbers
    slo = SLO(slo_class=slo_class)
    fast = make_request_view(
        rid, arrival, prompt, output, computed, blocks, slo, predicted, bound, cap, first,
        preemptions, swapped,
    )  # fmt: skip
    slow = RequestView(
        request_id=rid,
        arrival_time=arrival,
        prompt_tokens=prompt,
        output_tokens=output,
        computed_tokens=computed,
        blocks_held=blocks,
        slo=slo,
        predicted_output=predicted,
        output_bound=bound,
        max_output_tokens=cap,
        first_token_time=first,
        num_preemptions=preemptions,
        swapped_tokens=swapped,
    )
    assert fast == slow
    assert dataclasses.astuple(fast) == dataclasses.astuple(slow)
    assert hash(fast) == hash(slow)


def test_fast_view_stays_frozen() -> None:
    view = make_request_view("r", 0.0, 1, 0, 0, 0, SLO(), 1, 1, 1, None, 0, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.output_tokens = 5  # type: ignore[misc]
