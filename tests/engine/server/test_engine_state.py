"""Real mode's ``GET /sloserve/state`` and ``/sloserve/reservations``: the proxy answers from
the snapshot file the scheduler writes (the scheduler side is tested on real vLLM objects in
``tests/engine/vllm/test_vllm_state_file.py``). No upstream is needed for these routes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from engine_helpers import ServeApp

from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.router.snapshot import EngineSnapshot
from sloserve_engine.server.auth import AdminAuth
from sloserve_engine.server.knobs_store import KnobsStore
from sloserve_engine.server.proxy import build_proxy_app


def _snapshot(free: int, at: float) -> EngineSnapshot:
    return EngineSnapshot("pod-0", "pod-0", 97_472, free, 0, 0, 0, 0, 0.0, 0.0, 8192, at)


def test_state_and_shield_follow_the_schedulers_file(
    tmp_path: Path, token_file: Path, serve_app: ServeApp
) -> None:
    state = tmp_path / "state.json"
    app = build_proxy_app(
        KnobsStore(Knobs()), AdminAuth(token_file), "http://127.0.0.1:9", state_file=state
    )
    auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    with serve_app(app) as url:
        early = httpx.get(url + "/sloserve/state")
        assert early.status_code == 503 and early.headers["retry-after"] == "1"
        reserve = {"requestId": "r1", "promptTokens": 500, "outputTokens": 500,
                   "predictedOutput": 100}  # fmt: skip
        assert httpx.post(url + "/sloserve/reservations", json=reserve, headers=auth).status_code
        state.write_text(json.dumps(_snapshot(97_472, time.time()).to_json()))
        assert httpx.get(url + "/sloserve/state").json()["kvFreeTokens"] == 97_472
        granted = httpx.post(url + "/sloserve/reservations", json=reserve, headers=auth)
        assert granted.status_code == 201, granted.text
        time.sleep(0.01)  # a new mtime
        state.write_text(json.dumps(_snapshot(1_000, time.time()).to_json()))
        assert httpx.get(url + "/sloserve/state").json()["kvFreeTokens"] == 1_000
        full = httpx.post(url + "/sloserve/reservations", json={**reserve, "requestId": "r2"},
                          headers=auth)  # fmt: skip
        assert full.status_code == 409 and full.json()["reason"] == "kv"


def test_a_reservation_ends_once_its_request_reached_the_engine(
    base: str, token_file: Path
) -> None:
    """Counted until the engine's snapshot shows the request, never twice: the router sends
    the reservation id with the request (``x-sloserve-reservation``)."""
    auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    reserve = {"requestId": "a", "promptTokens": 1000, "outputTokens": 50, "predictedOutput": 50}
    assert (
        httpx.post(base + "/sloserve/reservations", json=reserve, headers=auth).status_code == 201
    )
    assert httpx.post(base + "/sloserve/reservations", json={**reserve, "requestId": "kept"},
                      headers=auth).status_code == 201  # fmt: skip
    body = {"prompt": [1] * 1000, "max_tokens": 2}
    done = httpx.post(base + "/v1/completions", json=body, headers={"x-sloserve-reservation": "a"})
    assert done.status_code == 200
    # The next shield decision sees a snapshot taken after "a" arrived: "a" is settled.
    assert httpx.post(base + "/sloserve/reservations", json={**reserve, "requestId": "b"},
                      headers=auth).status_code == 201  # fmt: skip
    assert httpx.delete(base + "/sloserve/reservations/a", headers=auth).json() == {
        "released": False
    }
    assert httpx.delete(base + "/sloserve/reservations/kept", headers=auth).json() == {
        "released": True
    }
