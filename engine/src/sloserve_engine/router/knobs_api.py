"""The router's admin API: read and replace its knobs live, health.

The same contract as the engine's (``server/admin.py``): ``PUT /sloserve/knobs``
checks the bearer token before it reads the body, validates the whole
document (422 naming each bad field, nothing changes), and the revision is a
content hash, so the operator and every router replica agree on it without
shared state and re-applying the same document is a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ..server.admin import HealthProbe, auth_refusal, refusal
from ..server.auth import AdminAuth
from ..server.body import CLIENT_CLOSED_REQUEST, ClientGoneError, read_body
from ..server.errors import APIError, error_response
from .knobs import RouterKnobs

log = logging.getLogger(__name__)

Listener = Callable[[RouterKnobs], None]


def revision(knobs: RouterKnobs) -> int:
    """Content hash of the canonical document (the operator computes the same one)."""
    return knobs.revision()


class KnobsBox:
    """The router knobs in force; replacing them notifies the router."""

    def __init__(self, knobs: RouterKnobs, apply: Listener) -> None:
        self.knobs = knobs
        self.revision = knobs.revision()
        self._listeners = [apply]

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def replace(self, knobs: RouterKnobs) -> None:
        new = knobs.revision()
        if new == self.revision:
            return
        for listener in self._listeners:
            listener(knobs)
        self.knobs, self.revision = knobs, new

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "knobs": self.knobs.model_dump(mode="json", by_alias=True),
        }


def parse_router_knobs(raw: bytes | str) -> RouterKnobs:
    """Validate a JSON document; ``ValidationError`` names the fields."""
    return RouterKnobs.model_validate_json(raw)


def knobs_router(
    box: KnobsBox, auth: AdminAuth, health: HealthProbe, max_body_bytes: int
) -> APIRouter:
    """Refusals in OpenAI's error shape plus ``detail`` (and ``errors``), as the engine's
    admin API answers; a document above ``max_body_bytes`` is 413 before it is parsed."""
    router = APIRouter(prefix="/sloserve")

    @router.get("/knobs")
    async def get_knobs() -> JSONResponse:
        return JSONResponse(box.to_json())

    @router.put(
        "/knobs",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": RouterKnobs.model_json_schema()}},
            }
        },
    )
    async def put_knobs(request: Request) -> JSONResponse:
        if (denied := auth_refusal(auth, request)) is not None:
            return denied
        try:
            knobs = parse_router_knobs(await read_body(request, max_body_bytes, "router"))
        except APIError as exc:
            return error_response(exc)
        except ClientGoneError:
            return JSONResponse({}, status_code=CLIENT_CLOSED_REQUEST)
        except ValidationError as exc:
            errors = [
                {"field": ".".join(str(p) for p in e["loc"]) or "(document)", "message": e["msg"]}
                for e in exc.errors()
            ]
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            return JSONResponse(
                refusal(f"invalid router knobs: {detail}", 422, errors=errors), status_code=422
            )
        box.replace(knobs)
        log.info("router knobs in force: revision %d placement %s", box.revision, knobs.placement)
        return JSONResponse(box.to_json())

    @router.get("/health")
    async def get_health() -> JSONResponse:
        healthy, details = await health()
        body = {"status": "ok" if healthy else "unavailable", **details}
        return JSONResponse(body, status_code=200 if healthy else 503)

    return router
