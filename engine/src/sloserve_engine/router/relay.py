"""Pass one request through to an engine and its answer back, bytes unchanged.

Streams are relayed chunk by chunk as they come off the socket, never parsed:
the router only notices the first chunk (a placement's reservation ends
there) and the end. Three things must never hang or leak:

- the engine cannot be reached before a byte came back: :class:`UnreachableError`
  (the router may place the request elsewhere: nothing was generated);
- the engine dies mid-stream: the client gets an OpenAI-shaped ``error`` event
  (what vLLM itself sends when generation fails) and the stream ends;
- the client goes away: the upstream response is closed, so the engine sees
  the disconnect and aborts the request (freeing its KV).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import anyio
import httpx

from ..server.proxy import forwardable_headers


class UnreachableError(Exception):
    """No connection to the engine (nothing was sent to the model)."""


class End(StrEnum):
    """How a relayed response ended (the router's outcome label for a placed request)."""

    FINISHED = "finished"
    ERROR = "error"
    ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class Upstream:
    """An engine response whose headers arrived; the body is still on the socket."""

    response: httpx.Response

    @property
    def status(self) -> int:
        return self.response.status_code

    def headers(self) -> dict[str, str]:
        return forwardable_headers(self.response.headers)


async def open_upstream(
    client: httpx.AsyncClient,
    url: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
) -> Upstream:
    """Send the request; returns once the engine answered with headers."""
    request = client.build_request(
        "POST", url + path, headers=forwardable_headers(headers), content=body
    )
    try:
        return Upstream(await client.send(request, stream=True))
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise UnreachableError(f"{url}: {type(exc).__name__}") from exc


def error_event(message: str) -> bytes:
    """An SSE ``error`` event in vLLM's shape; the leading blank line ends a cut-off event."""
    body = {"error": {"message": message, "type": "BadGatewayError", "param": None, "code": 502}}
    return b"\n\ndata: " + json.dumps(body).encode() + b"\n\n"


async def relay_stream(
    upstream: Upstream,
    *,
    on_first_chunk: Callable[[], None],
    on_end: Callable[[End], None],
) -> AsyncIterator[bytes]:
    """The engine's body chunk by chunk; ``on_end`` is called exactly once."""
    end = End.FINISHED
    first = True
    try:
        async for chunk in upstream.response.aiter_raw():
            if first:
                first = False
                on_first_chunk()
            yield chunk
    except httpx.HTTPError as exc:
        end = End.ERROR
        yield error_event(f"the engine failed mid-response: {type(exc).__name__}")
    except (asyncio.CancelledError, GeneratorExit):
        end = End.ABORTED
        raise
    finally:
        with anyio.CancelScope(shield=True):  # a cancelled client must still close upstream
            await upstream.response.aclose()
        on_end(end)


async def read_body(upstream: Upstream) -> bytes:
    """A non-streamed answer in full (raw bytes: the encoding headers stay true)."""
    try:
        return b"".join([chunk async for chunk in upstream.response.aiter_raw()])
    finally:
        await upstream.response.aclose()
