from __future__ import annotations

import subprocess
import sys
import typing

import pydantic
import pytest

from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.router.knobs import DEFAULT_PLACEMENT, PlacementName, RouterKnobs
from sloserve_engine.router.placement import PLACEMENT_NAMES


def test_defaults_are_documented_and_camel_case() -> None:
    k = RouterKnobs()
    doc = k.model_dump(by_alias=True)
    assert doc["placement"] == DEFAULT_PLACEMENT in PLACEMENT_NAMES
    assert doc["queueLimit"] == 1024 and doc["queueTimeoutS"] == 5.0 and doc["admission"]
    assert doc["coldStartTimeoutS"] == 300.0
    assert doc["ttftMargin"] == 1.0 and doc["ttftMarginLateShare"] == 0.0
    assert doc["kvWaitReserved"] is True
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
        ({"coldStartTimeoutS": 0}, "coldStartTimeoutS"),
        ({"predictorConfidence": 1.5}, "predictorConfidence"),
        ({"classPriority": ["a", "a"]}, "classPriority"),
        ({"ttftMarginLateShare": 0.6}, "ttftMarginLateShare"),
        ({"ttftMarginLateShare": -0.1}, "ttftMarginLateShare"),
        ({"kvWaitReserved": "sometimes"}, "kvWaitReserved"),
        ({"queueLimt": 3}, "queueLimt"),
    ],
)
def test_bad_documents_name_the_field(doc: dict[str, object], field: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        RouterKnobs.model_validate(doc)


def test_class_rank_unknown_last() -> None:
    k = RouterKnobs(class_priority=("gold", "silver"))
    assert [k.class_rank(c) for c in ("gold", "silver", "bronze")] == [0, 1, 2]


def test_revision_is_a_content_hash() -> None:
    k = RouterKnobs()
    assert k.revision() == RouterKnobs.model_validate_json(k.canonical_json()).revision()
    assert RouterKnobs(queue_limit=7).revision() != k.revision()
    assert 0 <= k.revision() < 2**32


def test_placement_names_are_the_policies_there_are() -> None:
    assert set(typing.get_args(PlacementName)) == set(PLACEMENT_NAMES)


def test_the_document_imports_no_numpy() -> None:
    """The operator validates router knobs; its image has no numpy."""
    code = "import sys, sloserve_engine.router.knobs; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
