"""Real mode's proxy: client disconnects reach vLLM, bodies are limited, errors are OpenAI's.

vLLM is the FAKE stand-in (``fake_vllm.py``, no GPU here), which notes a client
that closes its connection as vLLM's server does before it aborts the request;
the proxy is the real app over real HTTP. That the scheduler then counts the
abort with ``outcome="aborted"`` is tested on real vLLM scheduler objects in
``tests/engine/vllm/test_vllm_aborts.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from engine_helpers import ServeApp

from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.server.auth import AdminAuth
from sloserve_engine.server.knobs_store import KnobsStore
from sloserve_engine.server.proxy import build_proxy_app, openai_error
from sloserve_engine.server.supervisor import free_loopback_port

HERE = Path(__file__).parent
LIMIT = 64 * 1024


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[str]:
    port = free_loopback_port()
    env = {"FAKE_VLLM_MARKER": str(tmp_path / "marker")}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "fake_vllm.py"), "--port", str(port)], env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def proxy(upstream: str, serve_app: ServeApp) -> Iterator[str]:
    app = build_proxy_app(KnobsStore(Knobs()), AdminAuth(None), upstream, max_body_bytes=LIMIT)
    with serve_app(app) as url:
        yield url


def _disconnects(upstream: str, expected: int) -> int:
    deadline = time.monotonic() + 5
    while (seen := int(httpx.get(f"{upstream}/fake/disconnects").json())) < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return seen


def test_client_leaving_a_non_streaming_request_closes_the_upstream_at_once(
    proxy: str, upstream: str
) -> None:
    """Before issue 12 the proxy waited for vLLM's answer: the request ran to completion."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{proxy}/v1/completions",
            json={"prompt": "x", "fake_hold_s": 20},
            timeout=httpx.Timeout(5, read=0.3),
        )
    assert _disconnects(upstream, 1) == 1


def test_client_leaving_a_stream_closes_the_upstream(proxy: str, upstream: str) -> None:
    body = {"stream": True, "max_tokens": 1000, "fake_token_delay_s": 0.05}
    with httpx.stream("POST", f"{proxy}/v1/completions", json=body, timeout=10) as r:
        assert next(r.iter_lines()).startswith("data: ")
    assert _disconnects(upstream, 1) == 1


def test_finished_requests_are_not_disconnects(proxy: str, upstream: str) -> None:
    r = httpx.post(f"{proxy}/v1/completions", json={"prompt": "x", "fake_hold_s": 0.1})
    assert r.json() == {"echo": {"prompt": "x", "fake_hold_s": 0.1}}
    assert int(httpx.get(f"{upstream}/fake/disconnects").json()) == 0


def test_body_over_the_limit_is_413_and_never_forwarded(proxy: str, upstream: str) -> None:
    r = httpx.post(f"{proxy}/v1/completions", content=b"x" * (LIMIT + 1))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == 413


def test_unreachable_vllm_is_a_503_in_the_openai_shape(serve_app: ServeApp) -> None:
    dead = f"http://127.0.0.1:{free_loopback_port()}"
    with serve_app(build_proxy_app(KnobsStore(Knobs()), AdminAuth(None), dead)) as url:
        r = httpx.post(f"{url}/v1/completions", json={"prompt": "x"})
    assert r.status_code == 503
    assert "not reachable" in r.json()["error"]["message"]


def test_vllm_errors_reach_the_client_in_the_openai_shape(proxy: str) -> None:
    """The stand-in answers an unknown route with ``{"error": "not found"}``, as FastAPI-style
    servers do with ``{"detail": ...}``; the client gets OpenAI's shape either way."""
    r = httpx.get(f"{proxy}/nope")
    assert r.status_code == 404
    assert r.json() == {
        "error": {"message": "not found", "type": "NotFoundError", "param": None, "code": 404}
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"detail": "Not Found"}', "Not Found"),
        (b'{"error": {"message": "m", "type": "T", "param": null, "code": 400}}', "m"),
        (b"plain text", "plain text"),
        (b'{"detail": [{"loc": ["body"]}]}', '[{"loc": ["body"]}]'),
    ],
)
def test_openai_error_wraps_any_upstream_error_body(raw: bytes, message: str) -> None:
    assert openai_error(raw, 400)["error"]["message"] == message


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
@pytest.mark.parametrize(
    ("xargs", "param"),
    [
        ('{"tbt_ms": NaN}', "vllm_xargs.tbt_ms"),
        ('{"ttft_ms": 1e309}', "vllm_xargs.ttft_ms"),
        ('{"tbt_ms": "40"}', "vllm_xargs.tbt_ms"),
        ('{"slo_class": "a b"}', "vllm_xargs.slo_class"),
    ],
)
def test_bad_request_slo_is_the_simulated_engines_400_before_vllm_sees_it(
    proxy: str, upstream: str, path: str, xargs: str, param: str
) -> None:
    """Real mode used to hand a bad SLO to the engine core, which logged it and used defaults."""
    before = httpx.get(f"{upstream}/fake/posts").json()
    raw = f'{{"prompt": "x", "max_tokens": 2, "vllm_xargs": {xargs}}}'
    r = httpx.post(f"{proxy}{path}", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    assert httpx.get(f"{upstream}/fake/posts").json() == before  # never forwarded
    ok = httpx.post(f"{proxy}/v1/completions", json={"prompt": "x", "vllm_xargs": {"tbt_ms": 40}})
    assert ok.status_code == 200
