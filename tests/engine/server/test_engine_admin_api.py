"""Admin API over real HTTP: knobs read/replace, bearer auth, validation, health."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from sloserve_engine.contract.knobs import Knobs

ServeApp = Callable[[FastAPI], AbstractContextManager[str]]
SimAppFactory = Callable[..., FastAPI]


def _auth(token_file: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_file.read_text().strip()}"}


def test_get_knobs_returns_document_and_its_content_revision(base: str) -> None:
    state = httpx.get(f"{base}/sloserve/knobs").json()
    assert state["knobs"]["policy"] == "vllm"
    assert state["knobs"]["reservationRatio"] == 0.05  # camelCase on the wire
    assert state["revision"] == Knobs(policy="vllm").revision()


def test_put_replaces_knobs_and_get_reads_them_back(base: str, token_file: Path) -> None:
    doc = {"policy": "vllm", "reservationRatio": 0.2, "sloDefaults": {"ttftMs": 250}}
    r = httpx.put(f"{base}/sloserve/knobs", json=doc, headers=_auth(token_file))
    assert r.status_code == 200, r.text
    expected = Knobs.model_validate(doc)
    assert r.json()["revision"] == expected.revision()
    assert r.json()["knobs"]["sloDefaults"]["ttftMs"] == 250
    assert httpx.get(f"{base}/sloserve/knobs").json() == r.json()


def test_revision_changes_only_with_content(base: str, token_file: Path) -> None:
    before = httpx.get(f"{base}/sloserve/knobs").json()["revision"]
    # Same content, spelled differently (explicit defaults, other key order): same revision.
    same = {"reservationRatio": 0.05, "policy": "vllm", "chunkMaxTokens": 8192}
    r = httpx.put(f"{base}/sloserve/knobs", json=same, headers=_auth(token_file))
    assert r.json()["revision"] == before
    r = httpx.put(
        f"{base}/sloserve/knobs",
        json={"policy": "vllm", "chunkMaxTokens": 4096},
        headers=_auth(token_file),
    )
    assert r.json()["revision"] != before


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic abc"}],
    ids=["missing", "wrong", "not-bearer"],
)
def test_put_without_valid_token_is_401_and_changes_nothing(
    base: str, headers: dict[str, str]
) -> None:
    before = httpx.get(f"{base}/sloserve/knobs").json()
    # Even an invalid document gets 401 first: no schema is revealed to strangers.
    for doc in ({"policy": "vllm", "reservationRatio": 0.3}, {"reservationRatio": 7}):
        r = httpx.put(f"{base}/sloserve/knobs", json=doc, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{base}/sloserve/knobs").json() == before


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"reservationRatio": 0.9}, "reservationRatio"),
        ({"sloDefaults": {"ttftMs": -5}}, "sloDefaults.ttftMs"),
        ({"policy": "fastest"}, "policy"),
        ({"preemptionMode": "sometimes"}, "preemptionMode"),
        ({"chunkMinTokens": "many"}, "chunkMinTokens"),
        ({"reservationRatios": 0.1}, "reservationRatios"),
    ],
)
def test_bad_document_is_422_naming_the_field_and_changes_nothing(
    base: str, token_file: Path, doc: dict[str, object], field: str
) -> None:
    before = httpx.get(f"{base}/sloserve/knobs").json()
    r = httpx.put(f"{base}/sloserve/knobs", json=doc, headers=_auth(token_file))
    assert r.status_code == 422
    assert field in [e["field"] for e in r.json()["errors"]]
    assert field in r.json()["detail"]
    assert httpx.get(f"{base}/sloserve/knobs").json() == before


def test_not_json_is_422(base: str, token_file: Path) -> None:
    r = httpx.put(f"{base}/sloserve/knobs", content=b"policy=vllm", headers=_auth(token_file))
    assert r.status_code == 422


def test_without_token_file_writes_are_refused_with_403(
    serve_app: ServeApp, make_sim_app: SimAppFactory
) -> None:
    with serve_app(make_sim_app(token_file=None)) as url:
        r = httpx.put(
            f"{url}/sloserve/knobs", json={"policy": "vllm"}, headers={"Authorization": "Bearer x"}
        )
        assert r.status_code == 403
        assert "--admin-token-file" in r.json()["detail"]
        assert httpx.get(f"{url}/sloserve/knobs").status_code == 200


def test_rotated_token_file_takes_effect_without_restart(base: str, token_file: Path) -> None:
    old = _auth(token_file)
    token_file.write_text("rotated-secret-value-0123456789\n")
    doc = {"policy": "vllm", "reservationRatio": 0.1}
    assert httpx.put(f"{base}/sloserve/knobs", json=doc, headers=old).status_code == 401
    r = httpx.put(f"{base}/sloserve/knobs", json=doc, headers=_auth(token_file))
    assert r.status_code == 200


def test_token_never_appears_in_logs_or_metrics(
    token_file: Path,
    caplog: pytest.LogCaptureFixture,
    serve_app: ServeApp,
    make_sim_app: SimAppFactory,
) -> None:
    token = token_file.read_text().strip()
    caplog.set_level(logging.DEBUG)
    with serve_app(make_sim_app(token_file=token_file)) as url:
        good = {"Authorization": f"Bearer {token}"}
        near_miss = {"Authorization": f"Bearer {token}x"}
        httpx.put(
            f"{url}/sloserve/knobs", json={"policy": "vllm", "chunkMinTokens": 8}, headers=good
        )
        httpx.put(f"{url}/sloserve/knobs", json={"reservationRatio": 9}, headers=good)
        httpx.put(f"{url}/sloserve/knobs", json={"policy": "vllm"}, headers=near_miss)
        metrics = httpx.get(f"{url}/metrics").text
        health = httpx.get(f"{url}/sloserve/health").text
    assert "PUT /sloserve/knobs" in caplog.text  # the requests were logged ...
    assert token not in caplog.text  # ... without the token
    assert token not in metrics
    assert token not in health


def test_health(base: str) -> None:
    r = httpx.get(f"{base}/sloserve/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["mode"] == "simulated"
