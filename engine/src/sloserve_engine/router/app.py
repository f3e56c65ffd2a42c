"""``sloserve-router``'s ASGI app: OpenAI API in front of a service's engines.

Per request: check the body as the engine would (same 4xx), estimate its KV
demand, then place it (rank the live engines, judge them by the one yardstick,
reserve through the local book and the target engine's shield, relay), hold it
in the bounded queue until an engine can meet it, or reject it (429 with
``Retry-After``; 503 with no engine reachable). Every request ends with
exactly one outcome in ``sloserve_router_requests_total``.

The local book is a :class:`~.shield.RegionShield` over this router's own
view: it counts the placements this router made since each engine's last
state (Dynamo's "active sequences"), so one router never herds between two
polls; the engine's shield (``/sloserve/reservations``) is the authority
across routers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..policy.costmodel import StepCostModel
from ..server.auth import AdminAuth
from ..server.body import wait_for_disconnect
from ..server.errors import APIError, error_response
from ..server.reservations import RESERVATION_HEADER, RESERVATIONS_PATH
from .admission import Action, Decision, Reason
from .core import RouterCore
from .engines import Discover, EnginePool
from .knobs import RouterKnobs
from .knobs_api import KnobsBox, knobs_router
from .metrics import Outcome, RouterMetrics
from .placement import PlacementRequest
from .relay import End, UnreachableError, Upstream, open_upstream, read_body, relay_stream
from .requests import BODY_SCHEMAS, PATHS, Routed, ServiceLimits, parse_request
from .shield import Refusal, RefusalReason, Release

log = logging.getLogger(__name__)
T = TypeVar("T")

RELAY_ATTEMPTS = 2
"""Placements tried when the chosen engine turns out unreachable (nothing was generated)."""
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RouterOptions:
    discover: Discover
    limits: ServiceLimits
    cost: StepCostModel
    knobs: RouterKnobs = dataclasses.field(default_factory=RouterKnobs)
    admin_token_file: Path | None = None
    """Bearer token of the router's admin API and of the engines' reservation API."""
    poll_interval_s: float = 0.05
    stale_after_s: float = 1.0
    resolve_interval_s: float = 5.0
    upstream_read_timeout_s: float = 600.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    seed: int | None = None
    """Placement RNG seed; ``None``: different per process, so replicas do not herd in step."""


class ClientGoneError(Exception):
    """The client disconnected before its answer started."""


async def _unless_gone(gone: asyncio.Future[None], work: Awaitable[T]) -> T:
    """``work``'s result, or :class:`ClientGoneError` (``work`` cancelled) if the client
    disconnects first."""
    task = asyncio.ensure_future(work)
    watched: set[asyncio.Future[Any]] = {task, gone}
    done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise ClientGoneError


class RejectedError(Exception):
    """A request that will not be placed: the response and outcome are decided."""

    def __init__(self, outcome: Outcome, status: int, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.status = status
        self.retry_after_s = retry_after_s

    def response(self) -> JSONResponse:
        exc = APIError(str(self), None, status=self.status)
        return _with_retry(error_response(exc), self.retry_after_s)


def _with_retry(response: JSONResponse, seconds: float) -> JSONResponse:
    response.headers["Retry-After"] = str(max(int(seconds), 1))
    return response


@dataclass(slots=True)
class Placement:
    """A granted placement of one request."""

    url: str
    request_id: str
    remote: bool
    """The engine's shield holds a reservation under ``request_id``."""
    released: bool = False


class Router:
    """The I/O around one :class:`~.core.RouterCore`: polling, shields, relays, outcomes.

    The core decides (the same object the cluster simulator drives); this class
    feeds it polled snapshots on the router's clock (re-stamped at arrival, so
    a state's age is measured where it is used), asks the target engine's
    shield before every placement, and reports how each request ended.
    """

    def __init__(
        self,
        opts: RouterOptions,
        client: httpx.AsyncClient,
        pool: EnginePool,
        metrics: RouterMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.opts = opts
        self.client = client
        self.pool = pool
        self.metrics = metrics
        self.clock = clock
        seed = opts.seed if opts.seed is not None else int.from_bytes(os.urandom(4), "big")
        self.core = RouterCore(opts.knobs, opts.cost, opts.limits.max_model_len, seed)
        self.core.hold_without_engines = True  # engines come and go: wait for one, bounded
        self._waiting: dict[str, asyncio.Future[Decision]] = {}
        """Held requests' handlers, woken by :meth:`tick` with their next decision."""
        self._ids = itertools.count()
        self._background: set[asyncio.Task[None]] = set()
        self._token = opts.admin_token_file.read_text().strip() if opts.admin_token_file else None
        self._shield_warned = False
        self._observed: dict[str, float] = {}
        """Receive time of the snapshot the core holds, per engine."""

    @property
    def knobs(self) -> RouterKnobs:
        return self.core.knobs

    def apply_knobs(self, knobs: RouterKnobs) -> None:
        self.core.set_knobs(knobs)

    # ------------------------------------------------------------------ state

    def sync(self) -> None:
        """Hand the core every new snapshot; engines that are down or stale leave it."""
        live = self.pool.live()
        urls = {e.url for e in live}
        for url in list(self._observed):
            if url not in urls:
                del self._observed[url]
                self.core.forget(url)
        for e in live:
            if self._observed.get(e.url) != e.received_at:
                self._observed[e.url] = e.received_at
                self.core.observe(
                    dataclasses.replace(e.snapshot, engine_id=e.url, observed_at=e.received_at)
                )

    def tick(self) -> None:
        """Judge held requests again on the freshest state (every poll interval). While some
        wait and no engine is live, discovery runs again at once: the engines the router knew
        may be gone (scaled to zero) and a new one must be found as soon as it is Ready."""
        self.sync()
        if self.core.held() and not self._observed:
            self.pool.resolve_soon()
        for rid, decision in self.core.poll(self.clock()):
            self._wake(rid, decision)
        self._wake_shed()
        self._publish_depth()

    def _publish_depth(self) -> None:
        self.metrics.queue_depth.set(self.core.held())

    def _wake(self, rid: str, decision: Decision) -> None:
        future = self._waiting.pop(rid, None)
        if future is not None and not future.done():
            future.set_result(decision)

    def _wake_shed(self) -> None:
        """Held requests the core evicted for more important ones get their 429 now."""
        for rid in self.core.take_shed():
            self._wake(rid, Decision(Action.REJECT, reason=Reason.SHED, retry_after_s=1.0))

    async def run_ticks(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self.opts.poll_interval_s)

    # ------------------------------------------------------------------ placing

    def _timed(self, decide: Callable[..., Decision], *args: Any) -> Decision:
        """One decision of the core, its CPU time observed (thread time: a busy machine that
        deschedules the router mid-decision does not inflate the algorithm's cost)."""
        t0 = time.thread_time()
        decision = decide(*args)
        self.metrics.decision.observe(time.thread_time() - t0)
        return decision

    async def place(self, rid: str, routed: Routed) -> Placement:
        """Place the request (through the engine's shield) or raise :class:`RejectedError`."""
        self.sync()
        decision = self._timed(
            self.core.submit,
            rid,
            routed.prompt_tokens,
            routed.slo,
            self.clock(),
            routed.max_tokens,
        )
        self._wake_shed()
        tried: set[str] = set()
        while True:
            if decision.action is Action.REJECT:
                raise self._rejection(decision)
            if decision.action is Action.HOLD:
                self._publish_depth()
                future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
                self._waiting[rid] = future
                try:
                    decision = await future
                finally:
                    self._waiting.pop(rid, None)
                continue
            assert decision.engine_id is not None
            url = decision.engine_id
            tried.add(url)
            granted = await self._reserve_remote(rid, url) if self.knobs.shield else None
            if granted is None or granted.granted:
                now = self.clock()
                self.core.granted(rid, url, now)
                return Placement(url, rid, remote=granted is not None)
            self.metrics.shield_refusals.inc()
            refusal = Refusal(rid, url, granted.reason, self._alternative(rid, tried))
            decision = self._timed(self.core.refused, refusal, self.clock())
            self._wake_shed()

    def _alternative(self, rid: str, tried: set[str]) -> str | None:
        """SROLE's boundary step: each engine is its own region, so the router proposes the
        best feasible engine it has not tried (the neighbour region's shield decides)."""
        demand, slo, arrival = self.core.placing(rid)
        now = self.clock()
        request = PlacementRequest(rid, demand, slo, now - arrival, now)
        for cand in self.core.placement.rank(request, self.core.states()):
            if cand.engine_id not in tried and cand.feasible:
                return cand.engine_id
        return None

    def _rejection(self, decision: Decision) -> RejectedError:
        retry = decision.retry_after_s or 1.0
        reason = decision.reason
        if reason is Reason.NO_REPLICA:
            return RejectedError(Outcome.UNAVAILABLE, 503, "no engine is reachable", retry)
        if reason is Reason.COLD_START:
            return RejectedError(
                Outcome.UNAVAILABLE,
                503,
                "no engine became available within the router's cold-start timeout "
                f"({self.knobs.cold_start_timeout_s:g} s)",
                retry,
            )
        if reason is Reason.TIMEOUT:
            return RejectedError(
                Outcome.TIMED_OUT,
                429,
                "no engine could take the request within the router's queue timeout "
                f"({self.knobs.queue_timeout_s:g} s)",
                retry,
            )
        messages = {
            Reason.QUEUE_FULL: "the router queue is full",
            Reason.SHED: "shed from the router queue for a more important request",
        }
        default = "no engine can serve the request within its TTFT target now (admission control)"
        return RejectedError(
            Outcome.REJECTED, 429, messages.get(reason, default) if reason else default, retry
        )

    async def _reserve_remote(self, rid: str, url: str) -> _ShieldAnswer | None:
        """The engine shield's answer; ``None``: it cannot be asked (placed on the local check,
        logged once)."""
        demand, slo, arrival = self.core.placing(rid)
        body = {
            "requestId": rid,
            "promptTokens": demand.prompt_tokens,
            "outputTokens": demand.output_tokens,
            "predictedOutput": demand.predicted_output,
            "slo": {
                "sloClass": slo.slo_class,
                "ttftMs": slo.ttft_s * 1e3,
                "tbtMs": slo.tbt_s * 1e3,
            },
            "waitedS": self.clock() - arrival,
            "leaseS": self.knobs.lease_s,
            "force": self.core.forced(rid),
        }
        try:
            response = await self.client.post(
                url + RESERVATIONS_PATH, json=body, headers=self._auth_header(), timeout=1.0
            )
        except httpx.HTTPError as exc:
            self._warn_shield(f"{url}: {type(exc).__name__}")
            return None
        if response.status_code == 201:
            return _ShieldAnswer(True)
        if response.status_code == 409:
            reason = response.json().get("reason", "kv")
            return _ShieldAnswer(False, reason if reason in ("kv", "ttft") else "kv")
        self._warn_shield(f"{url} answered {response.status_code}: {response.text[:200]}")
        return None

    def _warn_shield(self, why: str) -> None:
        if not self._shield_warned:
            self._shield_warned = True
            log.warning("engine shield unavailable, placing on the local check: %s", why)

    def _auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def release(self, placement: Placement, why: Release) -> None:
        """End the engine's reservation (in the background: its lease expires anyway)."""
        if placement.released or not placement.remote:
            placement.released = True
            return
        placement.released = True
        task = asyncio.create_task(self._release_remote(placement, why))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _release_remote(self, placement: Placement, why: Release) -> None:
        url = f"{placement.url}{RESERVATIONS_PATH}/{placement.request_id}"
        with contextlib.suppress(httpx.HTTPError):
            await self.client.delete(
                url, params={"reason": why.value}, headers=self._auth_header(), timeout=2.0
            )

    # ------------------------------------------------------------------ serving

    async def serve(self, request: Request, path: str) -> Response:
        try:
            body = await _read_limited(request, self.opts.max_body_bytes)
            routed = parse_request(path, body, self.opts.limits)
        except APIError as exc:
            self.metrics.outcome(Outcome.INVALID)
            return error_response(exc)
        gone = asyncio.ensure_future(wait_for_disconnect(request))
        try:
            return await self._route(path, request, body, routed, gone)
        finally:
            gone.cancel()  # a streamed answer's own disconnect watch takes over

    async def _route(
        self, path: str, request: Request, body: bytes, routed: Routed, gone: asyncio.Future[None]
    ) -> Response:
        """Place and relay; a client that leaves first aborts whatever is in progress
        (held in the queue, waiting for the engine's headers or its non-streamed body)."""
        headers = dict(request.headers)
        for attempt in range(RELAY_ATTEMPTS):
            rid = f"r{next(self._ids)}"
            arrival = self.clock()
            placement: Placement | None = None
            try:
                placement = await _unless_gone(gone, self.place(rid, routed))
                if placement.remote:
                    headers[RESERVATION_HEADER] = rid
                upstream = await _unless_gone(
                    gone, open_upstream(self.client, placement.url, path, headers, body)
                )
                if routed.stream and upstream.status == 200:
                    return self._stream(routed, placement, upstream, arrival)
                content = await _unless_gone(gone, read_body(upstream))
            except RejectedError as exc:
                self.metrics.outcome(exc.outcome)
                return exc.response()
            except ClientGoneError:
                self._abandoned(rid, placement)
                return Response(status_code=499)  # nobody reads it; the engine was told
            except UnreachableError as exc:
                assert placement is not None
                log.warning("engine unreachable at relay (attempt %d): %s", attempt + 1, exc)
                self.pool.mark_down(placement.url)
                self.release(placement, Release.ENGINE_GONE)
                self.core.failed(rid, self.clock())
                continue
            except httpx.HTTPError as exc:  # the engine died while sending the body
                assert placement is not None
                self.release(placement, Release.FAILED)
                self.core.failed(rid, self.clock())
                self.metrics.outcome(Outcome.ERROR)
                message = f"the engine failed mid-response: {type(exc).__name__}"
                return error_response(APIError(message, None, status=502))
            return self._complete(placement, upstream, content)
        self.metrics.outcome(Outcome.UNAVAILABLE)
        return _with_retry(
            error_response(APIError("no engine is reachable", None, status=503)), 1.0
        )

    def _abandoned(self, rid: str, placement: Placement | None) -> None:
        """The client left before an answer: end the request once, as aborted."""
        if placement is not None:
            self.release(placement, Release.FAILED)
        with contextlib.suppress(ValueError):  # already ended (e.g. timed out meanwhile)
            self.core.failed(rid, self.clock())
        self.metrics.outcome(Outcome.ABORTED)

    def _complete(self, placement: Placement, upstream: Upstream, content: bytes) -> Response:
        """A non-streamed answer (or an engine error to a stream), as the engine sent it."""
        rid = placement.request_id
        ok = upstream.status < 400
        self.release(placement, Release.COMPLETED if ok else Release.FAILED)
        produced = _usage_tokens(content)
        if ok and produced:
            self.core.finished(rid, produced, True, self.clock())
        else:
            self.core.failed(rid, self.clock())
        self.metrics.outcome(_status_outcome(upstream.status))
        return Response(content, status_code=upstream.status, headers=upstream.headers())

    def _stream(
        self, routed: Routed, placement: Placement, upstream: Upstream, arrival: float
    ) -> Response:
        rid = placement.request_id
        first_at: list[float] = []
        tokens = [0]

        def on_first() -> None:
            now = self.clock()
            first_at.append(now)
            self.core.first_token(rid, now)
            self.release(placement, Release.FIRST_TOKEN)

        def on_end(end: End) -> None:
            now = self.clock()
            self.release(placement, Release.COMPLETED if end is End.FINISHED else Release.FAILED)
            if end is End.FINISHED and tokens[0] > 0:
                met = bool(first_at) and first_at[0] - arrival <= routed.slo.ttft_s
                self.core.finished(rid, tokens[0], met, now)
            else:
                self.core.failed(rid, now)
            self.metrics.outcome(Outcome(end.value))

        async def counted() -> AsyncIterator[bytes]:
            async for chunk in relay_stream(upstream, on_first_chunk=on_first, on_end=on_end):
                tokens[0] += chunk.count(b'"finish_reason"')
                yield chunk

        return StreamingResponse(counted(), status_code=200, headers=upstream.headers())

    async def models(self) -> Response:
        """``GET /v1/models`` from any live engine (all serve the same model)."""
        for engine in self.pool.live():
            with contextlib.suppress(httpx.HTTPError):
                r = await self.client.get(engine.url + "/v1/models", timeout=2.0)
                return Response(r.content, status_code=r.status_code, media_type="application/json")
        return _with_retry(
            error_response(APIError("no engine is reachable", None, status=503)), 1.0
        )


@dataclass(frozen=True, slots=True)
class _ShieldAnswer:
    granted: bool
    reason: RefusalReason = "kv"


def _status_outcome(status: int) -> Outcome:
    if status < 400:
        return Outcome.FINISHED
    return Outcome.INVALID if status < 500 else Outcome.ERROR


def _usage_tokens(content: bytes) -> int | None:
    """``usage.completion_tokens`` of a non-streamed answer (to learn output lengths)."""
    try:
        doc = json.loads(content)
        value = doc["usage"]["completion_tokens"]
    except (ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) else None


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(
            f"request body exceeds the router's limit of {limit} bytes", None, status=413
        )
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise APIError(
                f"request body exceeds the router's limit of {limit} bytes", None, status=413
            )
        chunks.append(chunk)
    return b"".join(chunks)


def build_router_app(opts: RouterOptions) -> FastAPI:
    """One app = one router replica, with its own metrics registry."""
    registry = CollectorRegistry()
    metrics = RouterMetrics(registry)
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    client = httpx.AsyncClient(
        limits=limits,
        timeout=httpx.Timeout(opts.upstream_read_timeout_s, connect=1.0),
    )
    pool = EnginePool(
        client,
        opts.discover,
        poll_interval_s=opts.poll_interval_s,
        stale_after_s=opts.stale_after_s,
        resolve_interval_s=opts.resolve_interval_s,
    )
    router = Router(opts, client, pool, metrics)
    box = KnobsBox(opts.knobs, router.apply_knobs)
    metrics.knobs_revision.set(box.revision)
    box.subscribe(lambda knobs: metrics.knobs_revision.set(knobs.revision()))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(pool.run(), name="engine-pool"),
            asyncio.create_task(router.run_ticks(), name="router-ticks"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.aclose()

    app = FastAPI(title="sloserve-router", lifespan=lifespan)

    for path in PATHS:

        async def endpoint(request: Request, _path: str = path) -> Response:
            return await router.serve(request, _path)

        app.add_api_route(
            path, endpoint, methods=["POST"], openapi_extra=_json_body(BODY_SCHEMAS[path])
        )

    @app.get("/v1/models")
    async def models() -> Response:
        return await router.models()

    async def health() -> tuple[bool, dict[str, Any]]:
        counts = _engine_counts(pool)
        return True, {
            "mode": "router",
            "knobsRevision": box.revision,
            "engines": counts,
            "queueDepth": router.core.held(),
        }

    app.include_router(knobs_router(box, AdminAuth(opts.admin_token_file), health))

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        counts = _engine_counts(pool)
        for state, n in counts.items():
            metrics.engines.labels(state=state).set(n)
        metrics.state_age.set(pool.max_state_age_s())
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.state.router = router
    return app


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a route that reads its body itself (relayed unchanged)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _engine_counts(pool: EnginePool) -> dict[str, int]:
    live = {e.url for e in pool.live()}
    counts = {"live": len(live), "stale": 0, "down": 0}
    for url, polled in pool.engines.items():
        if url in live:
            continue
        counts["stale" if polled.up else "down"] += 1
    return counts
