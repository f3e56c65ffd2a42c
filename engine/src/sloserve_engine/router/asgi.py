"""Raw ASGI for the router's hot path: read a body under a limit, answer, notice a client
that left.

Completions and chat completions skip FastAPI's request machinery (routing,
dependency solving, a ``Request`` object and a response class per request):
profiled, that was about a quarter of the router's CPU per request, for
nothing the relay needs (docs/router.md, "The hot path").
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Receive, Send

from ..server.body import ClientGoneError, declared_length, too_large
from ..server.errors import APIError, error_body

JSON_HEADERS = [(b"content-type", b"application/json")]


async def read_body(headers: list[tuple[bytes, bytes]], receive: Receive, limit: int) -> bytes:
    """The whole body: 413 (:class:`APIError`) as soon as it is known to exceed ``limit``
    (``Content-Length`` first, then while it streams in); :class:`ClientGoneError` if the
    client leaves first."""
    for name, value in headers:
        if name == b"content-length":
            declared = declared_length(value.decode("latin-1"))
            if declared is not None and declared > limit:
                raise too_large(limit, "router")
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk: bytes = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise too_large(limit, "router")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_bytes(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, doc: Any, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps(doc).encode()
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    length = [(b"content-length", str(len(body)).encode())]
    await send_bytes(send, status, JSON_HEADERS + length + extra, body)


async def send_error(send: Send, exc: APIError, headers: dict[str, str] | None = None) -> None:
    """``exc`` in OpenAI's error shape, as the engine answers it."""
    await send_json(send, exc.status, error_body(str(exc), exc.status, exc.param), headers)
