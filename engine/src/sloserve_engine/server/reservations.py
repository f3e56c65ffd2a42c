"""``/sloserve/reservations``: the SROLE shield of this engine, for router replicas.

Routers place concurrently on states up to a poll old; two of them can pick the
same engine for requests that together do not fit. Before relaying, a router
asks the engine's shield to reserve the request's KV demand. The engine's event
loop serialises the calls, so check-and-reserve is atomic per engine (the
region of this shield is the engine itself; a refusal names no alternative and
the router tries its next candidate). The shield judges with the engine's own
latest step snapshot plus the reservations granted since, with the same
:func:`~sloserve_engine.router.placement.judge` the routers rank with.

A reservation ends at the request's first token (the router says so), or when
its lease expires, so a router that dies holds nothing forever. The endpoints
change what the engine admits, so they take the admin bearer token.

docs/router.md ("Where the shield runs") has the measurements behind running
the shield here rather than in router replicas.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from starlette.types import ASGIApp, Receive, Scope, Send

from ..contract.slo import SLO
from ..policy.costmodel import StepCostModel
from ..router.demand import KvDemand
from ..router.shield import RegionShield, Release, Reservation
from .admin import auth_refusal
from .auth import AdminAuth
from .body import CLIENT_CLOSED_REQUEST, ClientGoneError, read_body
from .errors import APIError, error_response
from .state import StateSource

log = logging.getLogger(__name__)

RESERVATIONS_PATH = "/sloserve/reservations"
RESERVATION_HEADER = "x-sloserve-reservation"
"""Request header naming the reservation a relayed request was placed under."""
RESERVATION_HEADER_BYTES = RESERVATION_HEADER.encode()
DEFAULT_LEASE_S = 30.0


class ReservationRequest(BaseModel):
    """``POST /sloserve/reservations`` body (camelCase)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    request_id: str = Field(min_length=1, max_length=256, description="Router's request id.")
    prompt_tokens: int = Field(ge=1, le=10_000_000)
    output_tokens: int = Field(ge=1, le=10_000_000, description="Output bound to reserve.")
    predicted_output: int = Field(ge=1, le=10_000_000)
    slo: SLO = Field(default_factory=SLO)
    waited_s: float = Field(default=0.0, ge=0.0, le=3600.0)
    lease_s: float = Field(default=DEFAULT_LEASE_S, gt=0.0, le=3600.0)
    force: bool = Field(default=False, description="Grant without the collision test.")


class EngineShield:
    """A :class:`RegionShield` over this one engine, fed with its own snapshots.

    A reservation must count until the engine's snapshot shows its request, and
    not after (twice would refuse good placements). The router sends the request
    with the reservation id in :data:`RESERVATION_HEADER`; the shield notes the
    arrival and releases the reservation once a snapshot taken after it exists.
    Snapshots are handed to the region shield stamped no later than the oldest
    reservation still counting, so the shield's "granted after the snapshot" rule
    counts exactly those.
    """

    def __init__(
        self, source: StateSource, cost: StepCostModel, clock: Callable[[], float]
    ) -> None:
        self._source = source
        self._clock = clock
        self._cost = cost
        self.shield: RegionShield | None = None
        self._arrived: dict[str, float] = {}

    def arrived(self, request_id: str) -> None:
        """The request of reservation ``request_id`` reached this engine."""
        if self.shield is not None and request_id in self.shield.active:
            self._arrived[request_id] = self._clock()

    def reserve(self, req: ReservationRequest) -> Reservation | str:
        """The reservation, or why not (``kv``, ``ttft``, ``duplicate``, ``no-state``)."""
        snapshot = self._source()
        if snapshot is None:
            return "no-state"
        if self.shield is None:
            self.shield = RegionShield(snapshot.region, self._cost, lease_s=DEFAULT_LEASE_S)
        now = self._clock()
        shield = self.shield
        shield.expire(now)
        for rid, at in list(self._arrived.items()):
            if at <= snapshot.observed_at or rid not in shield.active:
                del self._arrived[rid]
                shield.release(rid, Release.COMPLETED, now)  # the snapshot shows it now
        oldest = min((r.granted_at for r in shield.active.values()), default=now)
        stamp = min(snapshot.observed_at, math.nextafter(oldest, -math.inf))  # just before
        shield.observe(dataclasses.replace(snapshot, observed_at=stamp))
        shield.lease_s = req.lease_s
        demand = KvDemand(req.prompt_tokens, req.output_tokens, req.predicted_output)
        result = shield.reserve(
            req.request_id, snapshot.engine_id, demand, req.slo, now, req.waited_s, force=req.force
        )
        return result if isinstance(result, Reservation) else result.reason

    def release(self, request_id: str, why: Release) -> bool:
        self._arrived.pop(request_id, None)
        if self.shield is None:
            return False
        return self.shield.release(request_id, why, self._clock()) is not None


class ArrivalMiddleware:
    """Tells the shield when a reserved request arrives (pure ASGI: no body buffering)."""

    def __init__(self, app: ASGIApp, shield: EngineShield) -> None:
        self.app = app
        self.shield = shield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for name, value in scope["headers"]:
                if name == RESERVATION_HEADER_BYTES:
                    self.shield.arrived(value.decode("latin-1"))
                    break
        await self.app(scope, receive, send)


def reservations_router(desk: EngineShield, auth: AdminAuth, max_body_bytes: int) -> APIRouter:
    """Refusals use OpenAI's error shape (``param`` names the field), like every other
    engine endpoint; a body above ``max_body_bytes`` is 413 before it is parsed."""
    router = APIRouter()

    @router.post(RESERVATIONS_PATH)
    async def reserve(request: Request) -> JSONResponse:
        if (denied := auth_refusal(auth, request)) is not None:
            return denied
        try:
            req = ReservationRequest.model_validate_json(await read_body(request, max_body_bytes))
        except APIError as exc:
            return error_response(exc)
        except ClientGoneError:
            return JSONResponse({}, status_code=CLIENT_CLOSED_REQUEST)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or None
            message = f"invalid reservation: {field or '(body)'}: {first['msg']}"
            return error_response(APIError(message, field, status=422))
        result = desk.reserve(req)
        if result == "no-state":
            return error_response(
                APIError("engine state not known yet", None, status=503), {"Retry-After": "1"}
            )
        if isinstance(result, Reservation):
            body = {"granted": True, **_camel(dataclasses.asdict(result))}
            return JSONResponse(body, status_code=201)
        return JSONResponse(
            {"granted": False, "requestId": req.request_id, "reason": result}, status_code=409
        )

    @router.delete(RESERVATIONS_PATH + "/{request_id}")
    async def release(request_id: str, request: Request) -> JSONResponse:
        if (denied := auth_refusal(auth, request)) is not None:
            return denied
        raw = request.query_params.get("reason", Release.FIRST_TOKEN.value)
        try:
            why = Release(raw)
        except ValueError:
            choices = ", ".join(r.value for r in Release)
            return error_response(APIError(f"reason must be one of {choices}", "reason", 422))
        return JSONResponse({"released": desk.release(request_id, why)})

    return router


def _camel(doc: dict[str, object]) -> dict[str, object]:
    return {to_camel(k): v for k, v in doc.items()}
