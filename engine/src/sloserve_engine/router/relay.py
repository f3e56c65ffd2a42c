"""Pass one request through to an engine and its answer back, bytes unchanged.

The router's per-request cost is mostly HTTP plumbing, so this path is kept
lean (docs/router.md, "The hot path"): one pooled ``aiohttp`` session with
keep-alive connections to every engine (its C parser costs about a third of
the CPU of httpx per request, measured), the client's body sent as the bytes
it came in, response headers forwarded as the raw byte pairs, and streams
relayed chunk by chunk as they come off the socket, never parsed: the router
only notices the first chunk (a placement's reservation ends there) and the
end. Three things must never hang or leak:

- the engine cannot be reached before a byte came back: :class:`UnreachableError`
  (the router may place the request elsewhere: nothing was generated);
- the engine dies mid-stream: the client gets an OpenAI-shaped ``error`` event
  (what vLLM itself sends when generation fails) and the stream ends;
- the client goes away: the upstream response is closed, so the engine sees
  the disconnect and aborts the request (freeing its KV).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

import aiohttp
from starlette.types import Send
from yarl import URL

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)
"""Headers that describe one connection (RFC 9110 §7.6.1), lower-case as ASGI gives them;
every other header passes through both ways."""

ENGINE_KEEPALIVE_S = 4.0
"""Idle engine connections are closed before uvicorn's 5 s keep-alive timeout closes them
from the engine's side (a POST on a connection the engine is closing would be lost)."""


class UnreachableError(Exception):
    """No connection to the engine (nothing was sent to the model)."""


class End(StrEnum):
    """How a relayed response ended (the router's outcome label for a placed request)."""

    FINISHED = "finished"
    ERROR = "error"
    ABORTED = "aborted"


def engine_session(read_timeout_s: float, connect_timeout_s: float = 1.0) -> aiohttp.ClientSession:
    """The router's one HTTP client: unlimited pooled keep-alive connections per engine
    (concurrency is bounded by placement, not by the pool), no body decoding (bytes pass
    through with their encoding headers), no headers of its own on relayed requests, and
    ``read_timeout_s`` as the longest silence on a response."""
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=0, keepalive_timeout=ENGINE_KEEPALIVE_S, ttl_dns_cache=None
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),  # one engine's cookie must never reach other clients
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s
        ),
    )


def request_headers(
    raw: Iterable[tuple[bytes, bytes]], extra: dict[str, str]
) -> list[tuple[str, str]]:
    """The client's headers (ASGI byte pairs) as the engine gets them, plus ``extra``."""
    out = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw if k not in HOP_BY_HOP]
    out.extend(extra.items())
    return out


@dataclass(frozen=True, slots=True)
class Upstream:
    """An engine response whose headers arrived; the body is still on the socket."""

    response: aiohttp.ClientResponse

    @property
    def status(self) -> int:
        return self.response.status

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The engine's response headers as ASGI byte pairs, hop-by-hop ones dropped."""
        return [(k.lower(), v) for k, v in self.response.raw_headers if k.lower() not in HOP_BY_HOP]


async def open_upstream(
    session: aiohttp.ClientSession,
    url: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> Upstream:
    """Send the request; returns once the engine answered with headers."""
    try:
        return Upstream(await session.post(_target(url, path), data=body, headers=headers))
    except aiohttp.ClientConnectorError as exc:
        raise UnreachableError(f"{url}: {type(exc).__name__}") from exc


@functools.lru_cache(maxsize=4096)
def _target(url: str, path: str) -> URL:
    """The parsed URL of an engine's endpoint (parsed once, not per request)."""
    return URL(url + path)


def error_event(message: str) -> bytes:
    """An SSE ``error`` event in vLLM's shape; the leading blank line ends a cut-off event."""
    body = {"error": {"message": message, "type": "BadGatewayError", "param": None, "code": 502}}
    return b"\n\ndata: " + json.dumps(body).encode() + b"\n\n"


async def relay_stream(
    upstream: Upstream,
    send: Send,
    *,
    on_chunk: Callable[[bytes], None],
    on_end: Callable[[End], None],
) -> None:
    """Send the engine's response to the client (ASGI ``send``) chunk by chunk as it comes
    off the socket; ``on_chunk`` sees each chunk first, ``on_end`` is called exactly once,
    also when this is cancelled before the first byte."""
    end = End.FINISHED
    try:
        await send({"type": "http.response.start", "status": 200, "headers": upstream.headers()})
        async for chunk in upstream.response.content.iter_any():
            on_chunk(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except (aiohttp.ClientError, TimeoutError) as exc:
        end = End.ERROR
        event = error_event(f"the engine failed mid-response: {type(exc).__name__}")
        await send({"type": "http.response.body", "body": event, "more_body": True})
    except asyncio.CancelledError:
        end = End.ABORTED
        raise
    finally:
        upstream.response.close()  # synchronous: a cancelled client still closes upstream
        on_end(end)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def read_upstream(upstream: Upstream) -> bytes:
    """A non-streamed answer in full (raw bytes: the encoding headers stay true)."""
    try:
        return await upstream.response.read()
    finally:
        upstream.response.close()
