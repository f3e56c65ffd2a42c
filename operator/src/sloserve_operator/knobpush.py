"""Push a knob document to engine or router pods over their admin API, all pods in parallel.

Engines and routers speak the same contract: ``PUT /sloserve/knobs`` with the bearer token,
answered by ``{"revision": <content hash>, "knobs": {...}}``.

Short timeouts: a pod that does not answer within a second is reported and retried by the
reconciler's backoff; it must never hold up the others or the reconcile loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, Field, ValidationError

from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.contract.pod import KNOBS_API_PATH
from sloserve_engine.router.knobs import RouterKnobs

from .render.target import HTTP_PORT

TIMEOUT = httpx.Timeout(2.0, connect=1.0)


@dataclass(frozen=True)
class AdminEndpoint:
    """One pod's admin API (knob pushes); the autoscaler's scrape target is ``MetricsEndpoint``."""

    name: str
    uid: str
    ip: str
    port: int = HTTP_PORT


@dataclass(frozen=True)
class PushResult:
    """What one pod answered: the revision it now runs, or why not."""

    revision: int | None
    message: str = ""
    rejected: bool = False
    """True when the pod answered 4xx (bad document or token); False for transport errors."""
    status: int = 0
    """HTTP status of the answer; 0 when there was none."""


def knobs_url(ip: str, port: int = HTTP_PORT) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}{KNOBS_API_PATH}"


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail if detail is not None else body)[:500]


async def push_one(
    client: httpx.AsyncClient, pod: AdminEndpoint, document: str, token: str
) -> PushResult:
    try:
        response = await client.put(
            knobs_url(pod.ip, pod.port),
            content=document,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=TIMEOUT,
        )
    except httpx.HTTPError as exc:
        return PushResult(None, f"unreachable: {type(exc).__name__}: {exc}".rstrip(": "))
    if response.status_code == 200:
        try:
            state = _Answer.model_validate_json(response.content)
        except ValidationError as exc:
            return PushResult(None, f"unexpected answer: {exc.errors()[0]['msg']}", status=200)
        return PushResult(state.revision, status=200)
    code = response.status_code
    message = f"HTTP {code}: {_detail(response)}"
    return PushResult(None, message, rejected=400 <= code < 500, status=code)


class _Answer(BaseModel):
    """The part of an admin API answer the operator needs (engines and routers alike)."""

    revision: int = Field(ge=0, description="Content hash of the document in force.")


async def push(
    client: httpx.AsyncClient,
    pods: Iterable[AdminEndpoint],
    knobs: Knobs | RouterKnobs,
    token: str,
) -> dict[str, PushResult]:
    """PUT ``knobs`` to every pod at once; one result per pod name."""
    document = knobs.model_dump_json(by_alias=True)
    targets = list(pods)
    results = await asyncio.gather(*(push_one(client, p, document, token) for p in targets))
    return {pod.name: result for pod, result in zip(targets, results, strict=True)}
