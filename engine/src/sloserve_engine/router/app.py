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
import gc
import itertools
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from ..policy.costmodel import StepCostModel
from ..server.auth import AdminAuth
from ..server.body import ClientGoneError, wait_for_disconnect
from ..server.errors import APIError, error_response, install_error_handlers
from ..server.reservations import RESERVATION_HEADER, RESERVATIONS_PATH
from .admission import Action, Decision, Reason
from .asgi import read_body, send_bytes, send_error
from .core import RouterCore
from .engines import Discover, EnginePool
from .knobs import RouterKnobs
from .knobs_api import KnobsBox, knobs_router
from .metrics import Outcome, RouterMetrics
from .relay import (
    End,
    UnreachableError,
    Upstream,
    engine_session,
    open_upstream,
    read_upstream,
    relay_stream,
    request_headers,
)
from .requests import BODY_SCHEMAS, PATHS, Routed, ServiceLimits, parse_request
from .shield import Refusal, RefusalReason, Release

log = logging.getLogger(__name__)

RELAY_ATTEMPTS = 2
"""Placements tried when the chosen engine turns out unreachable (nothing was generated)."""
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
SHIELD_TIMEOUT = aiohttp.ClientTimeout(total=1.0)
RELEASE_TIMEOUT = aiohttp.ClientTimeout(total=2.0)
MODELS_TIMEOUT = aiohttp.ClientTimeout(total=2.0)


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


class RejectedError(Exception):
    """A request that will not be placed: the response and outcome are decided."""

    def __init__(self, outcome: Outcome, status: int, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.status = status
        self.retry_after_s = retry_after_s

    async def send(self, send: Send) -> None:
        exc = APIError(str(self), None, status=self.status)
        await send_error(send, exc, _retry_after(self.retry_after_s))


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(int(seconds), 1))}


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
        pool: EnginePool,
        metrics: RouterMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.opts = opts
        self._session: aiohttp.ClientSession | None = None
        self.pool = pool
        self.metrics = metrics
        self.clock = clock
        seed = opts.seed if opts.seed is not None else int.from_bytes(os.urandom(4), "big")
        self.core = RouterCore(opts.knobs, opts.cost, opts.limits.max_model_len, seed)
        self.core.hold_without_engines = True  # engines come and go: wait for one, bounded
        self._waiting: dict[str, asyncio.Future[Decision]] = {}
        """Held requests' handlers, woken by :meth:`tick` with their next decision."""
        self._ids = itertools.count()
        self._id_prefix = os.urandom(4).hex() + "-"
        """Request ids are unique across router replicas: an engine's shield refuses a second
        reservation under an id it knows (exactly once), so routers that all counted r0, r1, ...
        refused each other's placements (seen as every other router's requests held, then 429,
        in a burst at zero with two routers)."""
        self._background: set[asyncio.Task[None]] = set()
        token = opts.admin_token_file.read_text().strip() if opts.admin_token_file else None
        self._shield_headers = {"Content-Type": "application/json"}
        if token:
            self._shield_headers["Authorization"] = f"Bearer {token}"
        self._shield_warned = False
        self._observed: dict[str, float] = {}
        """Receive time of the snapshot the core holds, per engine."""
        self.draining = False
        """Set when the process is told to stop: held requests get 503 at the next tick."""

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled client to the engines (made on the event loop, at start-up)."""
        if self._session is None:
            raise RuntimeError("the router has not started")
        return self._session

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The client session, engine polling and queue ticks, for the app's lifetime."""
        # Everything alive at start-up (modules, schemas, the app) lives as long as the
        # process: keep it out of the collector, whose full passes over it stall requests.
        gc.freeze()
        async with engine_session(self.opts.upstream_read_timeout_s) as session:
            self._session = session
            tasks = [
                asyncio.create_task(self.pool.run(session), name="engine-pool"),
                asyncio.create_task(self.run_ticks(), name="router-ticks"),
            ]
            try:
                yield
            finally:
                for task in (*tasks, *self._background):
                    task.cancel()
                await asyncio.gather(*tasks, *self._background, return_exceptions=True)

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
        ended = self.core.drain() if self.draining else self.core.poll(self.clock())
        for rid, decision in ended:
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
                self.core.granted(rid, url, now, streamed=routed.stream)
                return Placement(url, rid, remote=granted is not None)
            self.metrics.shield_refusals.inc()
            refusal = Refusal(rid, url, granted.reason, self._alternative(rid, tried))
            decision = self._timed(self.core.refused, refusal, self.clock())
            self._wake_shed()

    def _alternative(self, rid: str, tried: set[str]) -> str | None:
        """SROLE's boundary step: each engine is its own region, so the router proposes the
        best feasible engine it has not tried (the neighbour region's shield decides)."""
        request = self.core.placement_request(rid, self.clock())
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
        if reason is Reason.SHUTDOWN:
            return RejectedError(
                Outcome.UNAVAILABLE, 503, "the router is shutting down; retry", retry
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
            async with self.session.post(
                url + RESERVATIONS_PATH,
                data=json.dumps(body).encode(),
                headers=self._shield_headers,
                timeout=SHIELD_TIMEOUT,
            ) as response:
                status = response.status
                payload = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._warn_shield(f"{url}: {type(exc).__name__}")
            return None
        if status == 201:
            return _ShieldAnswer(True)
        if status == 409:
            reason = json.loads(payload).get("reason", "kv")
            return _ShieldAnswer(False, reason if reason in ("kv", "ttft") else "kv")
        self._warn_shield(f"{url} answered {status}: {payload[:200]!r}")
        return None

    def _warn_shield(self, why: str) -> None:
        if not self._shield_warned:
            self._shield_warned = True
            log.warning("engine shield unavailable, placing on the local check: %s", why)

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
        url = f"{placement.url}{RESERVATIONS_PATH}/{placement.request_id}?reason={why.value}"
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self.session.delete(
                url, headers=self._shield_headers, timeout=RELEASE_TIMEOUT
            ) as response:
                await response.read()

    # ------------------------------------------------------------------ serving

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One completions or chat request, end to end, on raw ASGI (the hot path). The
        client leaving aborts whatever is in progress: held in the queue, waiting for the
        engine's headers, its non-streamed body, or a stream."""
        path: str = scope["path"]
        try:
            body = await read_body(scope["headers"], receive, self.opts.max_body_bytes)
            routed = parse_request(path, body, self.opts.limits)
        except APIError as exc:
            self.metrics.outcome(Outcome.INVALID)
            await send_error(send, exc)
            return
        except ClientGoneError:
            self.metrics.outcome(Outcome.ABORTED)
            return
        gone = asyncio.ensure_future(wait_for_disconnect(receive))
        work = asyncio.ensure_future(self._route(path, scope, body, routed, send))
        try:
            await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            work.cancel()  # a no-op once it is done
            failure, _ = await asyncio.gather(work, gone, return_exceptions=True)
        if isinstance(failure, Exception):
            raise failure  # a bug: uvicorn logs it and answers 500

    async def _route(
        self, path: str, scope: Scope, body: bytes, routed: Routed, send: Send
    ) -> None:
        """Place and relay (cancelled when the client leaves)."""
        for attempt in range(RELAY_ATTEMPTS):
            rid = f"{self._id_prefix}{next(self._ids)}"
            arrival = self.clock()
            placement: Placement | None = None
            try:
                placement = await self.place(rid, routed)
                extra = {RESERVATION_HEADER: rid} if placement.remote else {}
                headers = request_headers(scope["headers"], extra)
                upstream = await open_upstream(self.session, placement.url, path, headers, body)
                if not (routed.stream and upstream.status == 200):
                    content = await read_upstream(upstream)
            except RejectedError as exc:
                self.metrics.outcome(exc.outcome)
                await exc.send(send)
                return
            except asyncio.CancelledError:
                self._abandoned(rid, placement)  # nobody to answer; the engine was told
                raise
            except UnreachableError as exc:
                assert placement is not None
                log.warning("engine unreachable at relay (attempt %d): %s", attempt + 1, exc)
                self.pool.mark_down(placement.url)
                self.release(placement, Release.ENGINE_GONE)
                self.core.failed(rid, self.clock())
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:  # the engine died mid-answer
                assert placement is not None
                self.release(placement, Release.FAILED)
                self.core.failed(rid, self.clock())
                self.metrics.outcome(Outcome.ERROR)
                message = f"the engine failed mid-response: {type(exc).__name__}"
                await send_error(send, APIError(message, None, status=502))
                return
            if routed.stream and upstream.status == 200:
                await self._stream(routed, placement, upstream, arrival, send)
            else:
                await self._complete(placement, upstream, content, send)
            return
        self.metrics.outcome(Outcome.UNAVAILABLE)
        await send_error(
            send, APIError("no engine is reachable", None, status=503), _retry_after(1)
        )

    def _abandoned(self, rid: str, placement: Placement | None) -> None:
        """The client left before an answer: end the request once, as aborted."""
        if placement is not None:
            self.release(placement, Release.FAILED)
        with contextlib.suppress(ValueError):  # already ended (e.g. timed out meanwhile)
            self.core.failed(rid, self.clock())
        self.metrics.outcome(Outcome.ABORTED)

    async def _complete(
        self, placement: Placement, upstream: Upstream, content: bytes, send: Send
    ) -> None:
        """A non-streamed answer (or an engine error to a stream), as the engine sent it."""
        rid = placement.request_id
        ok = upstream.status < 400
        self.release(placement, Release.COMPLETED if ok else Release.FAILED)
        produced = _usage_tokens(content) if ok else None
        if produced:
            self.core.finished(rid, produced, True, self.clock())
        else:
            self.core.failed(rid, self.clock())
        self.metrics.outcome(_status_outcome(upstream.status))
        await send_bytes(send, upstream.status, upstream.headers(), content)

    async def _stream(
        self, routed: Routed, placement: Placement, upstream: Upstream, arrival: float, send: Send
    ) -> None:
        """Relay a stream; the first chunk is the first token (the reservation ends there),
        each ``finish_reason`` key one token (counted in the bytes, nothing parsed)."""
        rid = placement.request_id
        first_at: float | None = None
        tokens = 0

        def on_chunk(chunk: bytes) -> None:
            nonlocal first_at, tokens
            tokens += chunk.count(b'"finish_reason"')
            if first_at is None:
                first_at = self.clock()
                self.core.first_token(rid, first_at)
                self.release(placement, Release.FIRST_TOKEN)

        def on_end(end: End) -> None:
            now = self.clock()
            self.release(placement, Release.COMPLETED if end is End.FINISHED else Release.FAILED)
            if end is End.FINISHED and tokens > 0:
                met = first_at is not None and first_at - arrival <= routed.slo.ttft_s
                self.core.finished(rid, tokens, met, now)
            else:
                self.core.failed(rid, now)
            self.metrics.outcome(Outcome(end.value))

        await relay_stream(upstream, send, on_chunk=on_chunk, on_end=on_end)

    async def models(self) -> Response:
        """``GET /v1/models`` from any live engine (all serve the same model)."""
        for engine in self.pool.live():
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.session.get(engine.url + "/v1/models", timeout=MODELS_TIMEOUT) as r:
                    content = await r.read()
                return Response(content, status_code=r.status, media_type="application/json")
        return error_response(APIError("no engine is reachable", None, status=503), _retry_after(1))


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


def build_router_app(opts: RouterOptions) -> HotPath:
    """One app = one router replica, with its own metrics registry: completions and chat on
    raw ASGI (the hot path), everything else (models, knobs, health, metrics, the OpenAPI
    document) through FastAPI."""
    registry = CollectorRegistry()
    metrics = RouterMetrics(registry)
    pool = EnginePool(
        opts.discover,
        poll_interval_s=opts.poll_interval_s,
        stale_after_s=opts.stale_after_s,
        resolve_interval_s=opts.resolve_interval_s,
    )
    router = Router(opts, pool, metrics)
    box = KnobsBox(opts.knobs, router.apply_knobs)
    metrics.knobs_revision.set(box.revision)
    box.subscribe(lambda knobs: metrics.knobs_revision.set(knobs.revision()))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with router.running():
            yield

    app = FastAPI(title="sloserve-router", lifespan=lifespan)
    install_error_handlers(app)

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

    auth = AdminAuth(opts.admin_token_file)
    app.include_router(knobs_router(box, auth, health, opts.max_body_bytes))

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        counts = _engine_counts(pool)
        for state, n in counts.items():
            metrics.engines.labels(state=state).set(n)
        metrics.state_age.set(pool.max_state_age_s())
        metrics.ttft_margin.set(router.core.margin.margin)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    _document_hot_paths(app)
    return HotPath(router, app)


class HotPath:
    """ASGI in front of the FastAPI app: ``POST`` completions and chat go straight to
    :meth:`Router.serve`; another method on those paths is 405 in OpenAI's error shape."""

    def __init__(self, router: Router, app: ASGIApp) -> None:
        self.router = router
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in PATHS:
            if scope["method"] == "POST":
                await self.router.serve(scope, receive, send)
            else:
                exc = APIError(f"{scope['path']} takes POST", None, status=405)
                await send_error(send, exc, {"Allow": "POST"})
            return
        await self.app(scope, receive, send)


def _document_hot_paths(app: FastAPI) -> None:
    """``/openapi.json`` also describes the raw ASGI routes, with the engine's request models
    as their bodies (clients and the API fuzzer see every documented field)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for path in PATHS:
                doc["paths"][path] = {
                    "post": {
                        "operationId": "create" + path.replace("/", "_"),
                        "requestBody": {
                            "required": True,
                            "content": {"application/json": {"schema": BODY_SCHEMAS[path]}},
                        },
                        "responses": {"200": {"description": "the engine's answer, unchanged"}},
                    }
                }
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _engine_counts(pool: EnginePool) -> dict[str, int]:
    live = {e.url for e in pool.live()}
    counts = {"live": len(live), "stale": 0, "down": 0}
    for url, polled in pool.engines.items():
        if url in live:
            continue
        counts["stale" if polled.up else "down"] += 1
    return counts
