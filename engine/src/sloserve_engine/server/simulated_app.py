"""The ASGI app of ``sloserve-engine --simulated``: completions, admin API, metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..contract.knobs import Knobs
from ..contract.pod import engine_id
from ..policy import make_policy
from ..policy.views import EngineSnapshot as EngineView
from ..router.drain import FreedMeter
from ..router.snapshot import EngineSnapshot, snapshot_from_view
from ..sim import SimConfig, SimEngine, SimProfile
from ..telemetry.metrics import EngineMetrics
from .admin import admin_router
from .auth import AdminAuth
from .body import DEFAULT_MAX_BODY_BYTES
from .errors import install_error_handlers
from .knobs_store import KnobsStore
from .openai_api import openai_router
from .openapi_doc import document_bodies
from .reservations import ArrivalMiddleware, EngineShield, reservations_router
from .simulated import SimulatedEngine
from .state import state_router


@dataclass(frozen=True, slots=True)
class SimulatedOptions:
    served_model_name: str
    knobs: Knobs
    profile: SimProfile
    sim_config: SimConfig
    admin_token_file: Path | None = None
    time_scale: float = 1.0
    attainment_window_s: float = 60.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


def build_simulated_app(opts: SimulatedOptions) -> FastAPI:
    """One app = one simulated GPU pod, with its own metrics registry."""
    registry = CollectorRegistry()
    store = KnobsStore(opts.knobs)
    metrics = EngineMetrics(
        registry,
        window_s=opts.attainment_window_s,
        slo_classes=opts.knobs.slo_defaults.declared_classes(),
        mode="simulated",
    )
    policy = make_policy(opts.knobs.policy, opts.knobs, opts.profile.step)
    sim = SimEngine(policy, opts.profile, opts.sim_config)
    engine = SimulatedEngine(
        sim,
        metrics,
        store,
        served_model_name=opts.served_model_name,
        time_scale=opts.time_scale,
    )
    auth = AdminAuth(opts.admin_token_file)
    name = engine_id()
    published: list[tuple[object, EngineSnapshot]] = []
    freed = FreedMeter()

    def publish(view: EngineView, observed_at: float | None = None) -> EngineSnapshot:
        order = sim.policy.start_deadline(view.now)  # the policy in force (knobs may swap it)
        return snapshot_from_view(view, name, name, opts.profile.step, observed_at, order, freed)

    def state() -> EngineSnapshot | None:
        """The last step's view, condensed once per step (pollers share the work)."""
        view = engine.last_view
        if view is None:
            return None
        if not published or published[0][0] is not view:
            snap = publish(view)
            published[:] = [(view, snap)]
        return published[0][1]

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(engine.run(), name="simulated-engine")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # a crash was logged already

    async def health() -> tuple[bool, dict[str, Any]]:
        details: dict[str, Any] = {
            "mode": "simulated",
            "knobsRevision": store.state().revision,
            "openRequests": engine.open_requests,
            "steps": engine.steps,
            "lagS": round(engine.lag_s, 6),
        }
        if engine.failure is not None:
            details["failure"] = engine.failure
        return engine.failure is None, details

    app = FastAPI(title="sloserve-engine (simulated)", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(openai_router(engine, opts.max_body_bytes))
    app.include_router(admin_router(store, auth, health, opts.max_body_bytes))
    app.include_router(state_router(state))

    def live_state() -> EngineSnapshot:
        """The shield judges on the engine as it is now (requests that just arrived included)."""
        view = engine.engine.snapshot()
        return publish(view, observed_at=engine.now())

    shield = EngineShield(live_state, opts.profile.step, engine.now)
    app.include_router(reservations_router(shield, auth, opts.max_body_bytes))
    app.add_middleware(ArrivalMiddleware, shield=shield)
    document_bodies(app)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.state.engine = engine
    return app
