"""The admin API next to the OpenAI API: read and replace knobs, health.

``PUT /sloserve/knobs`` checks the bearer token before it looks at the body,
so an unauthenticated caller learns nothing about the document schema, and
a rejected document (4xx) leaves the engine exactly as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..contract.knobs import InvalidKnobsError, parse_knobs
from ..contract.pod import HEALTH_PATH, KNOBS_API_PATH
from .auth import AdminAuth
from .body import CLIENT_CLOSED_REQUEST, ClientGoneError, read_body
from .errors import APIError, error_body, error_response
from .knobs_store import KnobsStore

log = logging.getLogger(__name__)

HealthProbe = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
"""Returns (healthy, details) for ``GET /sloserve/health``."""


def refusal(message: str, status: int, **extra: Any) -> dict[str, Any]:
    """OpenAI's error shape, plus ``detail`` (and ``errors``) that the operator reads."""
    return {**error_body(message, status), "detail": message, **extra}


def auth_refusal(auth: AdminAuth, request: Request) -> JSONResponse | None:
    """The answer to a caller without the admin token (``None``: allowed), logged; every
    endpoint that changes the engine refuses the same way."""
    decision = auth.check(request.headers.get("authorization"))
    if decision.allowed:
        return None
    log.warning(
        "%s %s refused (%d): %s",
        request.method,
        request.url.path,
        decision.status,
        decision.message,
    )
    headers = {"WWW-Authenticate": "Bearer"} if decision.status == 401 else None
    return JSONResponse(
        refusal(decision.message, decision.status), status_code=decision.status, headers=headers
    )


def admin_router(
    store: KnobsStore, auth: AdminAuth, health: HealthProbe, max_body_bytes: int
) -> APIRouter:
    router = APIRouter()

    @router.get(KNOBS_API_PATH)
    async def get_knobs() -> JSONResponse:
        return JSONResponse(store.state().to_json())

    @router.put(KNOBS_API_PATH)
    async def put_knobs(request: Request) -> JSONResponse:
        if request.url.query:
            return error_response(
                APIError(
                    "query parameters are not accepted here; send the token in the "
                    "Authorization header",
                    "query",
                )
            )
        if (denied := auth_refusal(auth, request)) is not None:
            return denied
        try:
            state = store.replace(parse_knobs(await read_body(request, max_body_bytes)))
        except APIError as exc:
            return error_response(exc)
        except ClientGoneError:
            return JSONResponse({}, status_code=CLIENT_CLOSED_REQUEST)
        except InvalidKnobsError as exc:
            log.warning("PUT /sloserve/knobs rejected: %s", exc)
            return JSONResponse(
                refusal(
                    f"invalid knobs document: {exc}", 422, errors=[e.to_json() for e in exc.errors]
                ),
                status_code=422,
            )
        log.info("knobs in force: revision %d policy %s", state.revision, state.knobs.policy)
        return JSONResponse(state.to_json())

    @router.get(HEALTH_PATH)
    async def get_health() -> JSONResponse:
        healthy, details = await health()
        body = {"status": "ok" if healthy else "unavailable", **details}
        return JSONResponse(body, status_code=200 if healthy else 503)

    return router
