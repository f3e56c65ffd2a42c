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

from .auth import AdminAuth
from .knobs_store import InvalidKnobsError, KnobsStore, knobs_json, parse_knobs

log = logging.getLogger(__name__)

HealthProbe = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
"""Returns (healthy, details) for ``GET /sloserve/health``."""


def admin_router(store: KnobsStore, auth: AdminAuth, health: HealthProbe) -> APIRouter:
    router = APIRouter(prefix="/sloserve")

    @router.get("/knobs")
    async def get_knobs() -> JSONResponse:
        return JSONResponse(knobs_json(store.state()))

    @router.put("/knobs")
    async def put_knobs(request: Request) -> JSONResponse:
        decision = auth.check(request.headers.get("authorization"))
        if not decision.allowed:
            log.warning("PUT /sloserve/knobs refused (%d): %s", decision.status, decision.message)
            headers = {"WWW-Authenticate": "Bearer"} if decision.status == 401 else None
            return JSONResponse(
                {"detail": decision.message}, status_code=decision.status, headers=headers
            )
        try:
            state = store.replace(parse_knobs(await request.body()))
        except InvalidKnobsError as exc:
            log.warning("PUT /sloserve/knobs rejected: %s", exc)
            return JSONResponse(
                {
                    "detail": f"invalid knobs document: {exc}",
                    "errors": [e.to_json() for e in exc.errors],
                },
                status_code=422,
            )
        log.info("knobs in force: revision %d policy %s", state.revision, state.knobs.policy)
        return JSONResponse(knobs_json(state))

    @router.get("/health")
    async def get_health() -> JSONResponse:
        healthy, details = await health()
        body = {"status": "ok" if healthy else "unavailable", **details}
        return JSONResponse(body, status_code=200 if healthy else 503)

    return router
