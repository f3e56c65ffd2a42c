"""The one knobs parser: strict wire types, camelCase names, finite numbers, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sloserve_engine.contract.knobs import (
    DEFAULT_KNOBS,
    InvalidKnobsError,
    Knobs,
    KnobsState,
    load_knobs_file,
    parse_knobs,
    write_knobs,
    write_knobs_state,
)


def test_empty_document_is_the_defaults() -> None:
    assert parse_knobs(b"{}") == DEFAULT_KNOBS == Knobs()
    assert DEFAULT_KNOBS.reservation_ratio == 0.05


def test_json_text_and_decoded_documents_parse_the_same() -> None:
    doc = {"policy": "vllm", "reservationRatio": 0.1, "sloDefaults": {"tbtMs": 50}}
    assert parse_knobs(json.dumps(doc)) == parse_knobs(doc)
    assert parse_knobs(doc).slo_defaults.tbt_s == 0.05


@pytest.mark.parametrize(
    ("raw", "field", "says"),
    [
        ('{"sloDefaults": {"tbtMs": 0}}', "sloDefaults.tbtMs", "greater than 0"),
        ('{"sloDefaults": {"tbtMs": 1e309}}', "sloDefaults.tbtMs", "finite"),
        ('{"sloDefaults": {"ttftMs": NaN}}', "sloDefaults.ttftMs", "finite"),
        ('{"sloDefaults": {"ttftMs": -Infinity}}', "sloDefaults.ttftMs", "finite"),
        ('{"sloDefaults": {"sloClass": "a b"}}', "sloDefaults.sloClass", "letters, digits"),
        ('{"reservationRatio": "0.1"}', "reservationRatio", "valid number"),
        ('{"reservationRatio": true}', "reservationRatio", "valid number"),
        ('{"chunkMaxTokens": 512.0}', "chunkMaxTokens", "valid integer"),
        ('{"chunkMaxTokens": "512"}', "chunkMaxTokens", "valid integer"),
        ('{"reservation_ratio": 0.1}', "reservation_ratio", "did you mean reservationRatio"),
        ('{"sloDefaults": {"tbt_ms": 5}}', "sloDefaults.tbt_ms", "did you mean tbtMs"),
        ('{"reservationRatios": 0.1}', "reservationRatios", "unknown field"),
        ('{"chunkMinTokens": 9000, "chunkMaxTokens": 10}', "(document)", "must not exceed"),
    ],
)
def test_bad_documents_name_the_wire_field(raw: str, field: str, says: str) -> None:
    with pytest.raises(InvalidKnobsError) as exc:
        parse_knobs(raw)
    errors = {e.field: e.message for e in exc.value.errors}
    assert field in errors, errors
    assert says in errors[field]


def test_origin_prefixes_every_field() -> None:
    with pytest.raises(InvalidKnobsError, match="knobs RPC: predictorConfidence"):
        parse_knobs({"predictorConfidence": 2}, "knobs RPC")


def test_python_construction_uses_field_names() -> None:
    assert Knobs(reservation_ratio=0.2).model_dump(by_alias=True)["reservationRatio"] == 0.2


def test_knobs_file_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "knobs.json"
    path.write_text('{"predictorConfidence": 2}')
    with pytest.raises(InvalidKnobsError, match=rf"{path}: predictorConfidence"):
        load_knobs_file(path)
    with pytest.raises(InvalidKnobsError, match="unreadable"):
        load_knobs_file(tmp_path / "missing.json")


def test_writers_leave_whole_documents_and_no_temp_files(tmp_path: Path) -> None:
    knobs = Knobs(policy="cacheopt", reservation_ratio=0.1)
    write_knobs(tmp_path / "knobs.json", knobs)
    write_knobs_state(tmp_path / "knobs.json.applied", knobs)
    assert load_knobs_file(tmp_path / "knobs.json") == knobs
    state = KnobsState.model_validate_json((tmp_path / "knobs.json.applied").read_text())
    assert state == KnobsState.of(knobs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["knobs.json", "knobs.json.applied"]


def test_revision_is_a_content_hash_of_the_canonical_document() -> None:
    a = parse_knobs('{"policy": "vllm", "reservationRatio": 0.1}')
    b = parse_knobs('{"reservationRatio": 0.1, "policy": "vllm"}')
    assert a.revision() == b.revision() != Knobs().revision()
    assert 0 <= a.revision() < 2**32
