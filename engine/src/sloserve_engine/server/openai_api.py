"""The simulated engine's OpenAI API: completions, chat completions, models.

One request path for both endpoints: the body is read under the size limit
(413), parsed off the event loop when large, checked (4xx in OpenAI's error
shape, counted as ``rejected``), submitted, then streamed as SSE or collected.
A client that goes away aborts its request in the engine, streaming or not:
a non-streaming handler races the engine against the client's disconnect,
so an abandoned request never runs to completion and never counts as attained.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from .body import (
    CLIENT_CLOSED_REQUEST,
    ClientGoneError,
    parse_off_loop,
    read_body,
    wait_for_disconnect,
)
from .chat import ChatShape, prepare_chat
from .completions import CompletionShape, prepare_completion
from .errors import APIError, error_body, error_response
from .openai_types import (
    CompletionBackend,
    Prepared,
    RequestLimits,
    ResponseShape,
    TokenSource,
    fake_token,
)

Prepare = Callable[[bytes, RequestLimits], Prepared]


def _event(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


async def _sse(
    p: Prepared, source: TokenSource, shape: ResponseShape, model: str
) -> AsyncIterator[str]:
    produced = 0
    try:
        for opening in shape.opening(p, model):
            yield _event(opening)
        try:
            async for index in source.tokens():
                produced += 1
                finish = "length" if produced == p.max_tokens else None
                yield _event(shape.token(p, model, fake_token(index)[1], finish))
        except APIError as exc:  # as vLLM does: an error event ends the stream
            yield _event(error_body(str(exc), exc.status, exc.param))
            return
        if p.include_usage:
            yield _event(shape.usage_event(p, model, produced))
        yield _event("[DONE]")
    finally:
        source.cancel()


async def _collect(source: TokenSource) -> list[str]:
    return [fake_token(index)[1] async for index in source.tokens()]


async def _complete(
    request: Request, p: Prepared, source: TokenSource, shape: ResponseShape, model: str
) -> Response:
    """The whole answer, unless the client leaves first (then the request is aborted)."""
    work = asyncio.ensure_future(_collect(source))
    gone = asyncio.ensure_future(wait_for_disconnect(request.receive))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        texts = work.result()
    except APIError as exc:
        return error_response(exc)
    finally:
        for task in (work, gone):
            task.cancel()
        source.cancel()  # a no-op once finished; aborts (and counts) an abandoned request
    return JSONResponse(shape.whole(p, model, "".join(texts), len(texts)))


async def _serve(
    request: Request,
    backend: CompletionBackend,
    prepare: Prepare,
    shape: ResponseShape,
    max_body_bytes: int,
) -> Response:
    try:
        body = await read_body(request, max_body_bytes)
        p = await parse_off_loop(lambda raw: prepare(raw, backend), body)
        source = backend.submit(p.request_id, p.prompt_tokens, p.max_tokens, p.slo)
    except ClientGoneError:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    except APIError as exc:
        backend.record_refused(exc.slo_class, exc.status)
        return error_response(exc)
    model = backend.served_model_name
    if p.stream:
        return StreamingResponse(
            _sse(p, source, shape, model),
            media_type="text/event-stream",
            background=BackgroundTask(source.cancel),  # also when the stream never started
        )
    return await _complete(request, p, source, shape, model)


def openai_router(backend: CompletionBackend, max_body_bytes: int) -> APIRouter:
    router = APIRouter()
    completion_shape, chat_shape = CompletionShape(), ChatShape()

    @router.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await _serve(request, backend, prepare_completion, completion_shape, max_body_bytes)

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await _serve(request, backend, prepare_chat, chat_shape, max_body_bytes)

    @router.get("/v1/models")
    async def models() -> JSONResponse:
        card = {
            "id": backend.served_model_name,
            "object": "model",
            "owned_by": "sloserve",
            "max_model_len": backend.max_model_len,
        }
        return JSONResponse({"object": "list", "data": [card]})

    return router
