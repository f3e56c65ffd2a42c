"""The one request-SLO type and parser: strict, finite, bounded, errors name the field."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sloserve_engine.contract.slo import MAX_TARGET_MS, SLO, InvalidSLOError, parse_slo

DEFAULT = SLO()


def test_defaults_are_the_documented_ones() -> None:
    assert (DEFAULT.slo_class, DEFAULT.ttft_ms, DEFAULT.tbt_ms) == ("standard", 1000.0, 100.0)
    assert (DEFAULT.ttft_s, DEFAULT.tbt_s) == (1.0, 0.1)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(None, DEFAULT, id="none"),
        pytest.param({}, DEFAULT, id="empty"),
        pytest.param({"kv_transfer_params": None}, DEFAULT, id="unrelated-keys"),
        pytest.param({"slo_class": "chat"}, SLO(slo_class="chat"), id="class-only"),
        pytest.param(
            {"slo_class": "chat", "ttft_ms": 250, "tbt_ms": 40.5},
            SLO(slo_class="chat", ttft_ms=250, tbt_ms=40.5),
            id="all-fields",
        ),
        pytest.param({"tbt_ms": MAX_TARGET_MS}, SLO(tbt_ms=MAX_TARGET_MS), id="largest"),
    ],
)
def test_request_fields_override_defaults_one_by_one(
    extra: dict[str, object] | None, expected: SLO
) -> None:
    assert parse_slo(extra, DEFAULT) == expected


def test_seconds_follow_milliseconds_exactly() -> None:
    slo = parse_slo({"ttft_ms": 500, "tbt_ms": 50}, DEFAULT)
    assert (slo.ttft_s, slo.tbt_s) == (0.5, 0.05)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        pytest.param({"ttft_ms": 0}, "ttft_ms", id="zero"),
        pytest.param({"tbt_ms": -5}, "tbt_ms", id="negative"),
        pytest.param({"ttft_ms": "fast"}, "ttft_ms", id="text"),
        pytest.param({"ttft_ms": "40"}, "ttft_ms", id="numeric-text-not-coerced"),
        pytest.param({"ttft_ms": True}, "ttft_ms", id="bool"),
        pytest.param({"tbt_ms": math.nan}, "tbt_ms", id="nan"),
        pytest.param({"tbt_ms": math.inf}, "tbt_ms", id="inf"),
        pytest.param({"ttft_ms": -math.inf}, "ttft_ms", id="minus-inf"),
        pytest.param({"ttft_ms": MAX_TARGET_MS * 2}, "ttft_ms", id="over-an-hour"),
        pytest.param({"tbt_ms": [1]}, "tbt_ms", id="list"),
        pytest.param({"slo_class": ""}, "slo_class", id="empty-class"),
        pytest.param({"slo_class": 3}, "slo_class", id="class-not-text"),
        pytest.param({"slo_class": "x" * 64}, "slo_class", id="class-too-long"),
        pytest.param({"slo_class": "a b"}, "slo_class", id="class-space"),
        pytest.param({"slo_class": "-a"}, "slo_class", id="class-leading-dash"),
        pytest.param({"slo_class": "é"}, "slo_class", id="class-not-ascii"),
    ],
)
def test_bad_values_raise_naming_the_field(extra: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidSLOError) as exc:
        parse_slo(extra, DEFAULT)
    assert exc.value.field == f"vllm_xargs.{field}"
    assert str(exc.value).startswith(f"vllm_xargs.{field}: ")


def test_error_message_shows_a_truncated_value() -> None:
    with pytest.raises(InvalidSLOError) as exc:
        parse_slo({"slo_class": "y" * 10_000}, DEFAULT)
    assert len(str(exc.value)) < 300


@given(st.from_regex(r"\A[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z"))
def test_every_label_value_shaped_class_is_accepted(name: str) -> None:
    assert parse_slo({"slo_class": name}, DEFAULT).slo_class == name


@given(st.floats())
def test_any_float_is_either_a_valid_target_or_refused(value: float) -> None:
    try:
        slo = parse_slo({"tbt_ms": value}, DEFAULT)
    except InvalidSLOError:
        assert not (0 < value <= MAX_TARGET_MS)
    else:
        assert math.isfinite(slo.tbt_s) and 0 < slo.tbt_ms <= MAX_TARGET_MS
