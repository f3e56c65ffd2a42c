"""KnobsApplied says which knob fields changed: the diff over real knob documents."""

from __future__ import annotations

from sloserve_engine.contract.knobs import Knobs
from sloserve_operator.knobdiff import changed_fields


def test_changed_fields_name_old_and_new_values_with_dotted_paths() -> None:
    old = Knobs().model_dump(by_alias=True)
    new = Knobs.model_validate(
        {"policy": "vllm", "reservationRatio": 0.1, "sloDefaults": {"ttftMs": 500.0}}
    ).model_dump(by_alias=True)
    assert changed_fields(old, new) == [
        "policy: sloserve → vllm",
        "reservationRatio: 0.05 → 0.1",
        f"sloDefaults.ttftMs: {old['sloDefaults']['ttftMs']:g} → 500",
    ]
    assert changed_fields(new, new) == []


def test_a_field_on_one_side_only_shows_a_dash() -> None:
    assert changed_fields({"router": {"a": 1}}, {}) == ["router: {'a': 1} → -"]
