"""Limits and input checks of the engine server (issue 12 items 5 and 6).

Each test is one reproduction from the issue: no body limit, the wrong message
for an over-long prompt with ``max_tokens: null``, a token file with an inner
newline, a 503 that showed the token file's path, a query-string token in the
access log, FastAPI's own error bodies. Real HTTP against the simulated engine.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from engine_helpers import EngineProcess, ServeApp, SimAppFactory, engine_process

from sloserve_engine.server.auth import AdminAuth, AdminTokenError, read_token
from sloserve_engine.server.body import INLINE_PARSE_BYTES
from sloserve_engine.server.logscrub import scrub_target

LIMIT = 256 * 1024


@pytest.fixture
def small(serve_app: ServeApp, make_sim_app: SimAppFactory, token_file: Path) -> Iterator[str]:
    with serve_app(make_sim_app(max_body_bytes=LIMIT, token_file=token_file)) as url:
        yield url


def _openai_error(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == status
    return dict(error)


def test_body_over_the_limit_by_content_length_is_413(small: str) -> None:
    body = json.dumps({"prompt": "x", "pad": "y" * (LIMIT + 1)})
    r = httpx.post(
        f"{small}/v1/completions", content=body, headers={"content-type": "application/json"}
    )
    assert "--max-body-bytes" in str(_openai_error(r, 413)["message"])
    assert httpx.get(f"{small}/sloserve/health").status_code == 200


def test_chunked_body_over_the_limit_is_413_without_content_length(small: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "x", "pad": "'
        for _ in range(2 * LIMIT // 65536):
            yield b"y" * 65536
        yield b'"}'

    r = httpx.post(f"{small}/v1/chat/completions", content=chunks())
    _openai_error(r, 413)


def test_admin_put_over_the_limit_is_413_and_changes_nothing(small: str, token_file: Path) -> None:
    before = httpx.get(f"{small}/sloserve/knobs").json()
    auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    body = b'{"policy": "sloserve"}' + b" " * LIMIT
    _openai_error(httpx.put(f"{small}/sloserve/knobs", content=body, headers=auth), 413)
    assert httpx.get(f"{small}/sloserve/knobs").json() == before


RESERVATION = {"requestId": "r1", "promptTokens": 10, "outputTokens": 10, "predictedOutput": 5}


def test_reservation_over_the_limit_is_413_and_reserves_nothing(
    small: str, token_file: Path
) -> None:
    auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    body = json.dumps(RESERVATION).encode() + b" " * LIMIT
    r = httpx.post(f"{small}/sloserve/reservations", content=body, headers=auth)
    assert "--max-body-bytes" in str(_openai_error(r, 413)["message"])
    # nothing was reserved under r1: the same id is still free (a second grant is "duplicate")
    r = httpx.post(f"{small}/sloserve/reservations", json=RESERVATION, headers=auth)
    assert r.status_code == 201, r.text


def test_reservation_refusals_use_the_openai_error_shape(small: str, token_file: Path) -> None:
    url = f"{small}/sloserve/reservations"
    r = httpx.post(url, json=RESERVATION)
    _openai_error(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"
    auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    bad_slo = {**RESERVATION, "slo": {"ttftMs": -1}}
    assert _openai_error(httpx.post(url, json=bad_slo, headers=auth), 422)["param"] == "slo.ttftMs"
    not_json = httpx.post(url, content=b"{", headers=auth)
    assert "invalid reservation" in str(_openai_error(not_json, 422)["message"])
    bad_reason = httpx.delete(f"{url}/r1", params={"reason": "nope"}, headers=auth)
    assert _openai_error(bad_reason, 422)["param"] == "reason"


def test_large_body_under_the_limit_parses_off_the_loop_and_is_served(small: str) -> None:
    """Above INLINE_PARSE_BYTES the body is parsed in a worker thread: same answer."""
    pad = "y" * (2 * INLINE_PARSE_BYTES)
    r = httpx.post(
        f"{small}/v1/completions",
        json={"prompt": "one two three", "max_tokens": 2, "pad": pad},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_long_prompt_with_null_max_tokens_gets_the_context_length_message(base: str) -> None:
    r = httpx.post(f"{base}/v1/completions", json={"prompt": [1] * 9000, "max_tokens": None})
    error = _openai_error(r, 400)
    assert "maximum context length is 8192 tokens" in str(error["message"])
    assert error["param"] == "prompt"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("GET", "/v1/completions", 405),
        ("DELETE", "/sloserve/knobs", 405),
    ],
)
def test_framework_errors_use_the_openai_error_shape(
    base: str, method: str, path: str, status: int
) -> None:
    _openai_error(httpx.request(method, f"{base}{path}"), status)


def test_admin_refusals_carry_the_openai_shape_and_detail(base: str) -> None:
    r = httpx.put(f"{base}/sloserve/knobs", json={})
    error = _openai_error(r, 401)
    assert r.json()["detail"] == error["message"]


def test_token_file_with_an_inner_newline_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("abc\ndef\n")
    with pytest.raises(AdminTokenError, match="whitespace inside the token"):
        read_token(path)


def test_engine_with_a_two_line_token_file_does_not_start(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("abc\ndef\n")
    proc = subprocess.run(
        [sys.executable, "-m", "sloserve_engine.server.cli", "--simulated", "--port", "1",
         "--admin-token-file", str(path)],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert b"whitespace inside the token" in proc.stderr


def test_missing_token_file_503_does_not_reveal_its_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secret-dir" / "token"
    path.parent.mkdir()
    path.write_text("tok\n")
    auth = AdminAuth(path)
    path.unlink()
    with caplog.at_level(logging.ERROR):
        decision = auth.check("Bearer tok")
    assert decision.status == 503
    assert str(tmp_path) not in decision.message and "secret-dir" not in decision.message
    assert "secret-dir" in caplog.text  # the operator of the engine still learns why


def test_scrub_target_drops_every_query_value() -> None:
    assert scrub_target("/sloserve/knobs?token=abc") == "/sloserve/knobs?<redacted>"
    assert scrub_target("/x?abc") == "/x?<redacted>"
    assert scrub_target("/v1/models") == "/v1/models"


@pytest.fixture(scope="module")
def proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with engine_process(tmp_path_factory.mktemp("limits")) as p:
        yield p


def test_query_string_token_is_refused_and_never_logged(proc: EngineProcess) -> None:
    r = httpx.put(f"{proc.url}/sloserve/knobs?token={proc.token}", json={"policy": "vllm"})
    assert _openai_error(r, 400)["param"] == "query"
    r = httpx.get(f"{proc.url}/v1/models?{proc.token}")
    assert r.status_code == 200
    assert httpx.get(f"{proc.url}/sloserve/health").status_code == 200
    logs = proc.stdout.read_text() + proc.stderr.read_text()
    assert "PUT /sloserve/knobs?<redacted>" in logs  # the access log ran, scrubbed
    assert proc.token not in logs
