"""Pure parts of the adapter: where the engine core's knobs come from, and the status file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sloserve_engine.contract.knobs import Knobs, write_knobs_state
from sloserve_engine.vllm.knobsource import (
    KnobsFile,
    KnobsSourceError,
    resolve_knobs_config,
)


def test_resolve_defaults_without_any_source() -> None:
    config = resolve_knobs_config(None, {})
    assert config.initial == Knobs()
    assert config.knobs_file is None and config.status_file is None and config.profile is None


def test_resolve_from_environment(tmp_path: Path) -> None:
    env = {
        "SLOSERVE_KNOBS_PATH": str(tmp_path / "k.json"),
        "SLOSERVE_POLICY": "vllm",
        "SLOSERVE_PROFILE": "h200-llama-3.1-8b",
    }
    config = resolve_knobs_config({}, env)
    assert config.initial.policy == "vllm"
    assert config.knobs_file == tmp_path / "k.json"
    assert config.status_file == tmp_path / "k.json.applied"
    assert config.profile == "h200-llama-3.1-8b"


def test_additional_config_wins_over_environment(tmp_path: Path) -> None:
    section = {
        "knobs": {"policy": "accelgen", "reservationRatio": 0.1},
        "knobs_file": str(tmp_path / "a.json"),
        "status_file": str(tmp_path / "s.json"),
    }
    env = {"SLOSERVE_KNOBS_PATH": "/nope", "SLOSERVE_POLICY": "vllm"}
    config = resolve_knobs_config({"sloserve": section}, env)
    assert config.initial == Knobs(policy="accelgen", reservation_ratio=0.1)
    assert config.knobs_file == tmp_path / "a.json"
    assert config.status_file == tmp_path / "s.json"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        pytest.param({"knobz": {}}, "unknown keys", id="unknown-key"),
        pytest.param({"knobs": {"reservationRatio": 7}}, "reservationRatio", id="bad-knob"),
        pytest.param({"knobs": []}, "must be an object", id="knobs-not-object"),
    ],
)
def test_resolve_rejects_bad_configuration(section: dict[str, object], message: str) -> None:
    with pytest.raises(KnobsSourceError, match=message):
        resolve_knobs_config({"sloserve": section}, {})


def test_knobs_file_reports_each_change_once(tmp_path: Path) -> None:
    path = tmp_path / "knobs.json"
    source = KnobsFile(path)
    assert source.poll() is None, "a missing file is not an error (it may appear later)"
    path.write_text(json.dumps({"policy": "vllm"}))
    assert source.poll() == Knobs(policy="vllm")
    assert source.poll() is None
    tmp = tmp_path / "next"
    tmp.write_text(json.dumps({"policy": "ecoserve"}))
    tmp.replace(path)
    assert source.poll() == Knobs(policy="ecoserve")
    path.write_text('{"chunkMinTokens": 9000, "chunkMaxTokens": 10}')
    assert source.poll() is None and source.errors == 1
    assert source.poll() is None and source.errors == 1


def test_write_knobs_state_is_the_knobs_state_document(tmp_path: Path) -> None:
    path = tmp_path / "knobs.json.applied"
    knobs = Knobs(policy="cacheopt")
    write_knobs_state(path, knobs)
    doc = json.loads(path.read_text())
    assert doc["revision"] == knobs.revision()
    assert Knobs.model_validate(doc["knobs"]) == knobs
    assert [p.name for p in tmp_path.iterdir()] == ["knobs.json.applied"]
