"""The router's engine client (``relay.engine_session``, ``open_upstream``) against a real
HTTP server on loopback: what the engine receives is what the client sent, nothing added,
and nothing one response set leaks into another client's request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from sloserve_engine.router.relay import engine_session, open_upstream, read_upstream


async def _echo(request: web.Request) -> web.Response:
    """The request as the engine saw it; sets a cookie, as a server behind a proxy might."""
    body = await request.read()
    seen = {"headers": dict(request.headers), "body": body.decode()}
    response = web.json_response(seen)
    response.set_cookie("session", "client-a")
    return response


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/completions", _echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://localhost:{port}"  # a name: cookie jars ignore IP hosts
    await runner.cleanup()


async def test_bytes_and_headers_pass_unchanged_and_cookies_never_cross_clients(
    echo_url: str,
) -> None:
    body = b'{"model": "m",  "prompt": "spacing kept"}'
    async with engine_session(read_timeout_s=5.0) as session:
        first = await open_upstream(session, echo_url, "/v1/completions", [("x-client", "a")], body)
        seen = json.loads(await read_upstream(first))
        assert first.status == 200
        assert seen["body"] == body.decode()  # not re-serialised
        assert seen["headers"]["x-client"] == "a"
        for added in ("User-Agent", "Accept", "Content-Type", "Accept-Encoding", "Cookie"):
            assert added not in seen["headers"], added
        assert any(k == b"set-cookie" for k, _ in first.headers())  # relayed to its client
        second = await open_upstream(
            session, echo_url, "/v1/completions", [("x-client", "b")], body
        )
        assert "Cookie" not in json.loads(await read_upstream(second))["headers"]
