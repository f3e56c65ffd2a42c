from __future__ import annotations

import pydantic
import pytest

from sloserve_engine.knobs import Knobs
from sloserve_engine.router.knobs import DEFAULT_PLACEMENT, RouterKnobs
from sloserve_engine.router.placement import PLACEMENT_NAMES


def test_defaults_are_documented_and_camel_case() -> None:
    k = RouterKnobs()
    doc = k.model_dump(by_alias=True)
    assert doc["placement"] == DEFAULT_PLACEMENT in PLACEMENT_NAMES
    assert doc["queueLimit"] == 1024 and doc["queueTimeoutS"] == 5.0 and doc["admission"]
    assert doc["predictorConfidence"] == Knobs().predictor_confidence
    for name, field in RouterKnobs.model_fields.items():
        assert field.description, name
    assert RouterKnobs.model_validate(doc) == k


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"placement": "round-robin"}, "placement"),
        ({"queueLimit": -1}, "queueLimit"),
        ({"queueTimeoutS": 0}, "queueTimeoutS"),
        ({"predictorConfidence": 1.5}, "predictorConfidence"),
        ({"classPriority": ["a", "a"]}, "classPriority"),
        ({"queueLimt": 3}, "queueLimt"),
    ],
)
def test_bad_documents_name_the_field(doc: dict[str, object], field: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        RouterKnobs.model_validate(doc)


def test_class_rank_unknown_last() -> None:
    k = RouterKnobs(class_priority=("gold", "silver"))
    assert [k.class_rank(c) for c in ("gold", "silver", "bronze")] == [0, 1, 2]
