"""Real mode: the engine server as a reverse proxy in front of ``vllm serve``.

Everything that is not ``/sloserve/*`` goes to vLLM unchanged and streamed
(completions SSE, ``/metrics`` with the engine-core metrics aggregated by
vLLM's multiprocess registry, ``/v1/models``...).

Bodies are read under the same size limit as in simulated mode before they are
forwarded. A client that goes away closes the upstream connection at once, also
while a non-streaming answer is still being computed: vLLM's server then aborts
the request, and the sloserve scheduler counts it as ``aborted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from ..contract.knobs import KnobsState
from ..policy.costmodel import StepCostModel, cost_model_for
from .admin import admin_router
from .auth import AdminAuth
from .body import (
    CLIENT_CLOSED_REQUEST,
    DEFAULT_MAX_BODY_BYTES,
    ClientGoneError,
    parse_off_loop,
    read_body,
    wait_for_disconnect,
)
from .errors import APIError, error_body, error_response, install_error_handlers
from .knobs_store import KnobsStore
from .openai_types import slo_from_xargs
from .openapi_doc import document_bodies
from .reservations import ArrivalMiddleware, EngineShield, reservations_router
from .state import StateFile, state_router

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
}


SLO_CHECKED_PATHS = ("v1/completions", "v1/chat/completions")
"""Where real mode checks ``vllm_xargs`` itself: vLLM would hand a bad SLO to the engine
core, where the scheduler can only log it and use the defaults."""


def check_request_slo(body: bytes, store: KnobsStore) -> None:
    """The simulated engine's SLO rule on a body bound for vLLM; raises its 400 (``APIError``).

    Bodies that are not JSON objects, or carry no ``vllm_xargs`` object, are vLLM's to judge.
    """
    if b"vllm_xargs" not in body:
        return
    try:
        doc = json.loads(body)  # like vLLM, NaN, Infinity and 1e309 parse (and are refused)
    except ValueError:
        return
    xargs = doc.get("vllm_xargs") if isinstance(doc, dict) else None
    if isinstance(xargs, dict):
        slo_from_xargs(xargs, store.knobs.slo_defaults)


def forwardable_headers(headers: Any) -> dict[str, str]:
    """Drop hop-by-hop headers (RFC 9110 §7.6.1); everything else passes through."""
    return {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}


def applied_revision(status_file: Path) -> int | None:
    """The revision the scheduler last applied (it writes a ``KnobsState``), if readable."""
    try:
        return KnobsState.model_validate_json(status_file.read_bytes()).revision
    except (OSError, ValueError):
        return None


def build_proxy_app(
    store: KnobsStore,
    auth: AdminAuth,
    upstream: str,
    lifespan: Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]] | None = None,
    applied_status_file: Path | None = None,
    state_file: Path | None = None,
    cost: StepCostModel | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """``applied_status_file``: where the scheduler reports what it applied (for health);
    ``state_file``: where it writes its router-facing snapshot (with ``cost``, the shield's
    cost model, this serves ``/sloserve/state`` and ``/sloserve/reservations``)."""
    client = httpx.AsyncClient(base_url=upstream, timeout=httpx.Timeout(None, connect=5.0))

    @contextlib.asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            await client.aclose()

    async def health() -> tuple[bool, dict[str, Any]]:
        try:
            status = (await client.get("/health", timeout=2.0)).status_code
        except httpx.HTTPError as exc:
            return False, {"mode": "vllm", "vllm": f"unreachable: {type(exc).__name__}"}
        details = {
            "mode": "vllm",
            "vllm": status,
            "knobsRevision": store.state().revision,
            "appliedKnobsRevision": applied_revision(applied_status_file)
            if applied_status_file
            else None,
        }
        return status == 200, details

    app = FastAPI(title="sloserve-engine", lifespan=app_lifespan)
    install_error_handlers(app)
    app.include_router(admin_router(store, auth, health, max_body_bytes))
    if state_file is not None:
        state = StateFile(state_file)
        app.include_router(state_router(state))
        shield = EngineShield(state, cost or cost_model_for(), time.time)
        app.include_router(reservations_router(shield, auth, max_body_bytes))
        app.add_middleware(ArrivalMiddleware, shield=shield)
    document_bodies(app)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
    async def forward(path: str, request: Request) -> Response:
        try:
            body = await read_body(request, max_body_bytes)
        except APIError as exc:
            return error_response(exc)
        except ClientGoneError:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        if request.method == "POST" and path in SLO_CHECKED_PATHS:
            try:
                await parse_off_loop(lambda raw: check_request_slo(raw, store), body)
            except APIError as exc:
                return error_response(exc)
        upstream_request = client.build_request(
            request.method,
            "/" + path,
            params=request.query_params,
            headers=forwardable_headers(request.headers),
            content=body,
        )
        sending = asyncio.ensure_future(client.send(upstream_request, stream=True))
        gone = asyncio.ensure_future(wait_for_disconnect(request.receive))
        try:
            await asyncio.wait({sending, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not sending.done():  # client left while vLLM computes a non-streaming answer
            sending.cancel()  # closes the upstream connection: vLLM aborts the request
            await asyncio.gather(sending, return_exceptions=True)
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        try:
            response = sending.result()
        except httpx.HTTPError as exc:
            message = f"vLLM is not reachable: {type(exc).__name__}"
            return JSONResponse(error_body(message, 503), status_code=503)
        if response.status_code >= 400 and _is_json(response):
            try:
                raw = await response.aread()
            finally:
                await response.aclose()
            return JSONResponse(openai_error(raw, response.status_code), response.status_code)
        return StreamingResponse(
            _relay(response),
            status_code=response.status_code,
            headers=forwardable_headers(response.headers),
            background=BackgroundTask(response.aclose),
        )

    return app


def _is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/json")


def openai_error(raw: bytes, status: int) -> Any:
    """vLLM's error body as is when it has OpenAI's shape; else (FastAPI's ``{"detail"}`` of
    an unknown route, say) the same message in that shape."""
    try:
        body = json.loads(raw)
    except ValueError:
        return error_body(raw.decode(errors="replace")[:1000], status)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body
    detail = body.get("detail", body.get("error", body)) if isinstance(body, dict) else body
    return error_body(detail if isinstance(detail, str) else json.dumps(detail), status)


async def _relay(response: httpx.Response) -> AsyncIterator[bytes]:
    """Upstream bytes as they come; closing (client gone, cancelled) closes the upstream."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        await response.aclose()
