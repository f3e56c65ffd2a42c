"""Bad numbers from outside against a running ``sloserve-engine --simulated`` process (issue 12).

Every value is sent as raw JSON over real HTTP to the real CLI process, so
``NaN``/``Infinity``/``1e309`` reach the server exactly as a client can send
them. Each must be a 4xx naming the field, change nothing, and leave the engine
healthy: afterwards health is 200 and a normal completion still succeeds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from sloserve_engine.server.supervisor import free_loopback_port

BAD_NUMBERS = ("NaN", "Infinity", "-Infinity", "1e309", '"5"', "true", "0", "-1")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, admin token) of one simulated engine process for the whole module."""
    token = "bad-input-token"
    token_file = tmp_path_factory.mktemp("engine") / "token"
    token_file.write_text(token + "\n")
    port = free_loopback_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sloserve_engine.server.cli",
            "--simulated",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--admin-token-file",
            str(token_file),
            "--time-scale",
            "20",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            try:
                if httpx.get(f"{url}/sloserve/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "engine did not become healthy"
            time.sleep(0.1)
        yield url, token
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=40)


def _still_serving(url: str) -> None:
    assert httpx.get(f"{url}/sloserve/health").status_code == 200
    r = httpx.post(f"{url}/v1/completions", json={"prompt": "hi", "max_tokens": 3}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == 3


def _post(url: str, raw: str) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    return httpx.post(f"{url}/v1/completions", content=raw, headers=headers, timeout=30)


@pytest.mark.parametrize("key", ["tbt_ms", "ttft_ms"])
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_bad_slo_target_is_400_naming_the_field_and_engine_stays_up(
    engine: tuple[str, str], key: str, value: str
) -> None:
    url, _ = engine
    r = _post(url, f'{{"prompt":"hi","max_tokens":2,"vllm_xargs":{{"{key}":{value}}}}}')
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == f"vllm_xargs.{key}"
    _still_serving(url)


@pytest.mark.parametrize("value", ['""', '"a b"', '"' + "x" * 64 + '"', "3", '"é"'])
def test_bad_slo_class_is_400(engine: tuple[str, str], value: str) -> None:
    url, _ = engine
    r = _post(url, f'{{"prompt":"hi","max_tokens":2,"vllm_xargs":{{"slo_class":{value}}}}}')
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "vllm_xargs.slo_class"


@pytest.mark.parametrize("value", ['"5"', "true", "5.0", "NaN", "1e309"])
def test_max_tokens_of_the_wrong_type_is_400_not_coerced(
    engine: tuple[str, str], value: str
) -> None:
    url, _ = engine
    r = _post(url, f'{{"prompt":"hi","max_tokens":{value}}}')
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "max_tokens"
    _still_serving(url)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"sloDefaults":{"tbtMs":1e309}}', "sloDefaults.tbtMs"),
        ('{"sloDefaults":{"ttftMs":NaN}}', "sloDefaults.ttftMs"),
        ('{"sloDefaults":{"ttftMs":Infinity}}', "sloDefaults.ttftMs"),
        ('{"sloDefaults":{"sloClass":"a b"}}', "sloDefaults.sloClass"),
        ('{"reservationRatio":"0.1"}', "reservationRatio"),
        ('{"reservationRatio":true}', "reservationRatio"),
        ('{"chunkMaxTokens":512.0}', "chunkMaxTokens"),
        ('{"chunkMaxTokens":"512"}', "chunkMaxTokens"),
        ('{"reservation_ratio":0.1}', "reservation_ratio"),
        ('{"policy":"vllm","slo_defaults":{}}', "slo_defaults"),
    ],
)
def test_bad_knobs_are_422_naming_the_field_and_change_nothing(
    engine: tuple[str, str], raw: str, field: str
) -> None:
    url, token = engine
    before = httpx.get(f"{url}/sloserve/knobs")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    r = httpx.put(f"{url}/sloserve/knobs", content=raw, headers=headers)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]], r.text
    after = httpx.get(f"{url}/sloserve/knobs")
    assert after.status_code == 200
    assert after.json() == before.json()
    _still_serving(url)


def test_snake_case_knob_error_names_the_wire_field(engine: tuple[str, str]) -> None:
    url, token = engine
    headers = {"Authorization": f"Bearer {token}"}
    r = httpx.put(f"{url}/sloserve/knobs", json={"reservation_ratio": 0.1}, headers=headers)
    assert r.status_code == 422
    assert "reservationRatio" in r.json()["detail"]
