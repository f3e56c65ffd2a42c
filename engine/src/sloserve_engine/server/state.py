"""``GET /sloserve/state``: the engine's :class:`~sloserve_engine.router.snapshot.EngineSnapshot`
for routers, cheap enough to poll at 10+ Hz from several routers.

One small JSON document, computed from the scheduler view the policy plans
with (no Prometheus text to render and parse):

- simulated mode: from the simulator's live view, on every request;
- real mode: the sloserve scheduler runs in vLLM's engine-core process, so it
  writes the snapshot to a file (``SLOSERVE_STATE_PATH``) at its metrics
  interval (10 Hz) and the server answers from that file, re-read only when it
  changed. Until the scheduler's first report the endpoint answers 503.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ..router.snapshot import EngineSnapshot, snapshot_from_json

STATE_PATH = "/sloserve/state"


class StateFile:
    """Real mode's source: the scheduler's last snapshot file, parsed once per change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cached: tuple[int, EngineSnapshot] | None = None

    def __call__(self) -> EngineSnapshot | None:
        try:
            mtime = self.path.stat().st_mtime_ns
            if self._cached is None or self._cached[0] != mtime:
                self._cached = (mtime, snapshot_from_json(json.loads(self.path.read_bytes())))
        except (OSError, ValueError):  # not written yet, or mid-rotation: keep the last one
            pass
        return None if self._cached is None else self._cached[1]


StateSource = Callable[[], EngineSnapshot | None]
"""Returns the engine's snapshot now, or ``None`` while it is not known (start-up)."""


def state_router(source: StateSource) -> APIRouter:
    router = APIRouter()

    @router.get(STATE_PATH)
    async def get_state() -> Response:
        snapshot = source()
        if snapshot is None:
            return JSONResponse(
                {"detail": "engine state not known yet (no scheduler step reported)"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        return JSONResponse(snapshot.to_json())

    return router
