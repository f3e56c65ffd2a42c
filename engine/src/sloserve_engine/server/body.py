"""Request bodies: a size limit checked before and while reading, and parsing off the loop.

Every stream of an engine shares one event loop, so one client's 10 MB body
must neither be buffered without bound nor parsed on the loop: the limit is
checked against ``Content-Length`` before a byte is read and again while the
body streams in (chunked uploads), and a body above ``INLINE_PARSE_BYTES`` is
parsed in a worker thread so the loop keeps delivering tokens meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from .errors import APIError

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
"""2 MiB: a 128K-token prompt as text (~4 bytes a token) or as JSON token ids (≤ 7 bytes)."""
INLINE_PARSE_BYTES = 64 * 1024
"""Bodies up to this size parse on the loop (a thread hop costs more than the parse)."""

CLIENT_CLOSED_REQUEST = 499
"""Status for a request whose client left before the answer (nginx's convention; only logged)."""

T = TypeVar("T")


class ClientGoneError(Exception):
    """The client disconnected before its request body was complete: nobody to answer."""


def too_large(limit: int, server: str = "engine") -> APIError:
    return APIError(
        f"request body exceeds the {server}'s limit of {limit} bytes (--max-body-bytes)",
        None,
        status=413,
    )


def declared_length(value: str | None) -> int | None:
    """``Content-Length`` as an int; a malformed header is the client's error (400)."""
    if value is None:
        return None
    if not value.isdigit():
        raise APIError("invalid Content-Length header", None)
    return int(value)


async def read_body(request: Request, limit: int, server: str = "engine") -> bytes:
    """The whole body, or :func:`too_large` as soon as it is known to exceed ``limit``."""
    declared = declared_length(request.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise too_large(limit, server)
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise too_large(limit, server)
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientGoneError from None
    return b"".join(chunks)


async def parse_off_loop(parse: Callable[[bytes], T], body: bytes) -> T:
    """``parse(body)``, in a worker thread when the body is large."""
    if len(body) <= INLINE_PARSE_BYTES:
        return parse(body)
    return await asyncio.to_thread(parse, body)


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has gone (call after the body was read; ``receive`` is the
    ASGI one, ``request.receive`` for a Starlette request)."""
    while (await receive())["type"] != "http.disconnect":
        pass
