"""Pure parts of the adapter: SLO parsing from vllm_xargs and knob-source resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sloserve_engine.knobs import Knobs
from sloserve_engine.policy.views import SLOTarget
from sloserve_engine.vllm.knobsource import (
    KnobsFile,
    KnobsSourceError,
    resolve_knobs_config,
    write_status,
)
from sloserve_engine.vllm.slo import InvalidSLOError, parse_slo

DEFAULT = SLOTarget("standard", 1.0, 0.1)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(None, DEFAULT, id="none"),
        pytest.param({}, DEFAULT, id="empty"),
        pytest.param({"kv_transfer_params": None}, DEFAULT, id="unrelated-keys"),
        pytest.param({"slo_class": "chat"}, SLOTarget("chat", 1.0, 0.1), id="class-only"),
        pytest.param(
            {"slo_class": "chat", "ttft_ms": 250, "tbt_ms": "40"},
            SLOTarget("chat", 0.25, 0.04),
            id="all-fields",
        ),
    ],
)
def test_parse_slo_overrides_defaults_field_by_field(
    extra: dict[str, object] | None, expected: SLOTarget
) -> None:
    assert parse_slo(extra, DEFAULT) == expected


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        pytest.param({"ttft_ms": 0}, "ttft_ms", id="zero"),
        pytest.param({"tbt_ms": -5}, "tbt_ms", id="negative"),
        pytest.param({"ttft_ms": "fast"}, "ttft_ms", id="text"),
        pytest.param({"ttft_ms": True}, "ttft_ms", id="bool"),
        pytest.param({"tbt_ms": float("nan")}, "tbt_ms", id="nan"),
        pytest.param({"slo_class": ""}, "slo_class", id="empty-class"),
        pytest.param({"slo_class": 3}, "slo_class", id="class-not-text"),
    ],
)
def test_parse_slo_names_the_bad_field(extra: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidSLOError, match=f"vllm_xargs.{field}"):
        parse_slo(extra, DEFAULT)


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


def test_write_status_is_the_knobs_state_document(tmp_path: Path) -> None:
    path = tmp_path / "knobs.json.applied"
    knobs = Knobs(policy="cacheopt")
    write_status(path, knobs)
    doc = json.loads(path.read_text())
    assert doc["revision"] == knobs.revision()
    assert Knobs.model_validate(doc["knobs"]) == knobs
    assert [p.name for p in tmp_path.iterdir()] == ["knobs.json.applied"]
