"""The reconciler: watch events in, server-side applies, knob pushes and status out.

Kopf delivers events (``handlers.py``); this module keeps what they say in memory, marks the
owning ``LLMService`` dirty and lets a pool of workers reconcile dirty services one at a time
per service (``WorkQueue``). A reconcile is level-triggered and idempotent, so an operator
restart mid-reconcile simply converges on the next one. It costs API calls only when something
changed: children are re-applied when the spec changed or a watch event shows they were
deleted or edited by someone else, status is patched only when it differs, and knob pushes go
to pods (over HTTP), not to the API server. That is what keeps an idle operator at ~0 API
calls per minute.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from . import knobpush, render, status
from .k8s import ApiError, Kube, object_path
from .knobpush import PodEndpoint, PushResult
from .metrics import OperatorMetrics
from .render import monitor, secret
from .render.target import ADMIN_TOKEN_KEY, SERVICE_LABEL, Target
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, LLMService name)."""

MONITOR_CHECK_S = 60.0
MAX_BACKOFF_S = 10.0
STATUS_DEBOUNCE_S = 0.5


@dataclass(frozen=True)
class Applied:
    """What the operator last applied for one child, to skip no-op applies."""

    digest: str
    resource_version: str
    generation: int


@dataclass(frozen=True)
class PodInfo:
    name: str
    uid: str
    ip: str
    ready: bool
    unschedulable: str = ""
    """The scheduler's reason when it cannot place the pod (PodScheduled=False)."""


@dataclass
class ServiceState:
    """The operator's memory of one LLMService and its children (rebuilt from watches)."""

    body: dict[str, Any]
    applied: dict[str, Applied] = field(default_factory=dict)
    deployment: dict[str, Any] | None = None
    pods: dict[str, PodInfo] = field(default_factory=dict)
    knobs: dict[str, tuple[str, PushResult]] = field(default_factory=dict)
    token: str | None = None
    reconciled_generation: int | None = None
    recreate: set[str] = field(default_factory=set)
    failures: int = 0


@dataclass(frozen=True)
class ControllerConfig:
    workers: int = 16
    knob_resync_s: float = 300.0
    """Re-push knobs to every pod this often (catches engines changed behind our back)."""
    full_resync_s: float = 1800.0
    """Re-apply every child this often (catches deletions missed while a watch was down)."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest(obj: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _key_of(obj: Mapping[str, Any]) -> Key | None:
    meta = obj.get("metadata", {})
    service = (meta.get("labels") or {}).get(SERVICE_LABEL)
    return (meta.get("namespace", ""), service) if service else None


def _pod_info(obj: Mapping[str, Any]) -> PodInfo:
    meta, st = obj["metadata"], obj.get("status", {})
    ready = st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []
    )
    unschedulable = next(
        (
            str(c.get("message") or c.get("reason") or "unschedulable")
            for c in st.get("conditions") or []
            if c.get("type") == "PodScheduled" and c.get("status") == "False"
        ),
        "",
    )
    return PodInfo(meta["name"], meta.get("uid", ""), st.get("podIP") or "", ready, unschedulable)


class Controller:
    def __init__(
        self,
        kube: Kube,
        http: httpx.AsyncClient,
        metrics: OperatorMetrics,
        config: ControllerConfig | None = None,
    ) -> None:
        self.kube, self.http, self.metrics = kube, http, metrics
        self.config = config or ControllerConfig()
        self.states: dict[Key, ServiceState] = {}
        self.queue: WorkQueue[Key] = WorkQueue()
        self._tasks: list[asyncio.Task[None]] = []
        self._monitor_api: tuple[float, bool] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"sloserve-worker-{i}")
            for i in range(self.config.workers)
        ]
        self._tasks.append(asyncio.create_task(self._resync(), name="sloserve-resync"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # ------------------------------------------------------------------ watch input

    def on_service(self, event_type: str | None, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        if event_type == "DELETED":
            self.states.pop(key, None)
            self.queue.cancel_retry(key)
            self.metrics.forget(*key)
            return  # children go with it: owner references, garbage collector
        st = self.states.get(key)
        if st is None or st.body["metadata"].get("uid") != meta.get("uid"):
            st = self.states[key] = ServiceState(body=obj)  # new, or deleted and re-created
        st.body = obj
        if st.reconciled_generation != meta.get("generation"):
            self.queue.add(key)

    def on_child(self, event_type: str | None, obj: dict[str, Any]) -> None:
        key = _key_of(obj)
        st = self.states.get(key) if key else None
        if key is None or st is None:
            return  # its LLMService's own event reconciles everything
        kind, meta = obj.get("kind", ""), obj["metadata"]
        child = f"{kind}/{meta['name']}"
        if kind == "Secret":
            if event_type == "DELETED":
                st.token = None
                self.queue.add(key)
            return
        status_changed = False
        if kind == "Deployment":
            seen = {"metadata": {"generation": meta.get("generation", 0)}, "status": {}}
            seen["status"] = obj.get("status", {}) if event_type != "DELETED" else {}
            status_changed = seen != st.deployment
            st.deployment = seen if event_type != "DELETED" else None
        record = st.applied.get(child)
        if event_type == "DELETED":
            st.applied.pop(child, None)
            st.recreate.add(child)
            self.queue.add(key)
        elif record is not None and (
            # Objects with a status (Deployment, PDB) change resourceVersion on every status
            # update; their generation moves only when the spec does.
            record.generation != meta["generation"]
            if "generation" in meta
            else record.resource_version != meta.get("resourceVersion")
        ):
            st.applied.pop(child, None)  # edited by someone else (or our own write raced)
            self.queue.add(key)
        elif status_changed:
            # A rollout emits a burst of Deployment status updates: one status write per burst.
            self.queue.add_after(key, STATUS_DEBOUNCE_S)

    def on_pod(self, event_type: str | None, obj: dict[str, Any]) -> None:
        key = _key_of(obj)
        st = self.states.get(key) if key else None
        if key is None or st is None:
            return
        name = obj["metadata"]["name"]
        if event_type == "DELETED" or obj["metadata"].get("deletionTimestamp"):
            st.knobs.pop(name, None)
            if st.pods.pop(name, None) is not None:
                self.queue.add(key)
            return
        info = _pod_info(obj)
        if st.pods.get(name) != info:
            st.pods[name] = info
            self.queue.add(key)

    # ------------------------------------------------------------------ workers

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                retry = await self._reconcile_timed(key)
            except Exception:  # a bug must not kill the worker; retry slowly
                log.exception("reconcile of %s/%s crashed", *key)
                retry = MAX_BACKOFF_S
            finally:
                self.queue.done(key)
            if retry is not None and key in self.states:
                self.queue.add_after(key, retry)

    async def _reconcile_timed(self, key: Key) -> float | None:
        started = time.perf_counter()
        try:
            return await self.reconcile(key)
        finally:
            self.metrics.reconcile_duration.observe(time.perf_counter() - started)

    async def _resync(self) -> None:
        """Periodic safety net; costs API calls only if something actually drifted."""
        last_full = time.monotonic()
        while True:
            await asyncio.sleep(self.config.knob_resync_s)
            full = time.monotonic() - last_full >= self.config.full_resync_s
            if full:
                last_full = time.monotonic()
            for key, st in list(self.states.items()):
                st.knobs.clear()
                if full:
                    st.applied.clear()
                self.queue.add(key)

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, key: Key) -> float | None:
        """One pass for one service; returns a retry delay when not converged."""
        st = self.states.get(key)
        if st is None:
            return None
        body = st.body
        try:
            target = Target.from_body(body)
        except ValidationError as exc:  # the CRD schema should have caught it: say so, stop
            try:
                await self._write_status(st, None, ("InvalidSpec", str(exc)[:2000]))
            except ApiError:
                return MAX_BACKOFF_S
            return None
        problem: tuple[str, str] | None = None
        try:
            await self._ensure_token(target, st)
            await self._apply_children(target, st)
        except ApiError as exc:
            problem = ("ApplyFailed", str(exc)[:2000])
            self.metrics.reconcile_errors.labels(*key).inc()
        converged = await self._push_knobs(target, st) and problem is None
        try:
            await self._write_status(st, target, problem)
        except ApiError as exc:
            log.warning("status of %s/%s not written: %s", *key, exc)
            converged = False
        if problem is None:
            st.reconciled_generation = target.generation
        if converged:
            st.failures = 0
            return None
        st.failures += 1
        return float(min(MAX_BACKOFF_S, 0.1 * 2**st.failures))

    async def _ensure_token(self, target: Target, st: ServiceState) -> None:
        """Create the admin-token Secret once; afterwards only read it back."""
        if st.token is not None:
            return
        token = secret.new_token()
        try:
            await self.kube.create(secret.render(target, token))
        except ApiError as exc:
            if exc.reason != "AlreadyExists":
                raise
            obj = await self.kube.get(object_path(secret.render(target, "")))
            token = base64.b64decode(obj.get("data", {}).get(ADMIN_TOKEN_KEY, "")).decode()
        st.token = token

    async def _with_monitor(self) -> bool:
        now = time.monotonic()
        if self._monitor_api is None or now - self._monitor_api[0] > MONITOR_CHECK_S:
            present = await self.kube.has_api(f"{monitor.GROUP}/v1", monitor.PLURAL)
            self._monitor_api = (now, present)
        return self._monitor_api[1]

    async def _apply_children(self, target: Target, st: ServiceState) -> None:
        applied: list[str] = []
        for obj in render.children(target, with_service_monitor=await self._with_monitor()):
            child = f"{obj['kind']}/{obj['metadata']['name']}"
            digest = _digest(obj)
            record = st.applied.get(child)
            if record is not None and record.digest == digest:
                continue
            result = await self.kube.apply(obj)
            meta = result.get("metadata", {})
            st.applied[child] = Applied(
                digest, str(meta.get("resourceVersion", "")), int(meta.get("generation", 0))
            )
            if obj["kind"] == "Deployment" and st.deployment is None:
                st.deployment = {"metadata": {"generation": meta.get("generation", 0)}}
                st.deployment["status"] = result.get("status", {})
            applied.append(child)
        recreated = sorted(st.recreate & set(applied))
        st.recreate -= set(applied)
        if recreated:
            await self._event(st, "Normal", "Recreated", f"recreated {', '.join(recreated)}")
        elif applied and st.reconciled_generation is not None:
            msg = f"generation {target.generation}: applied {', '.join(applied)}"
            await self._event(st, "Normal", "Applied", msg)

    async def _push_knobs(self, target: Target, st: ServiceState) -> bool:
        """Bring every ready pod to the spec's knob revision; True when all run it."""
        knobs = target.spec.knobs()
        revision = knobs.revision()
        ready = [p for p in st.pods.values() if p.ready and p.ip]
        for name in set(st.knobs) - {p.name for p in ready}:
            del st.knobs[name]
        todo = [
            p
            for p in ready
            if (known := st.knobs.get(p.name)) is None
            or known[0] != p.uid
            or known[1].revision != revision
        ]
        if todo and st.token is not None:
            started = time.perf_counter()
            endpoints = [PodEndpoint(p.name, p.uid, p.ip) for p in todo]
            results = await knobpush.push(self.http, endpoints, knobs, st.token)
            self.metrics.knob_push_duration.observe(time.perf_counter() - started)
            uids = {p.name: p.uid for p in todo}
            for name, result in results.items():
                st.knobs[name] = (uids[name], result)
            if any(r.status == 401 for r in results.values()):
                st.token = None  # the Secret changed under us: read it again next pass
        applied = sum(1 for p in ready if (k := st.knobs.get(p.name)) and k[1].revision == revision)
        self.metrics.knobs_applied_pods.labels(target.namespace, target.name).set(applied)
        return applied == len(ready)

    def _pod_states(self, st: ServiceState) -> list[status.PodKnobState]:
        out = []
        for pod in st.pods.values():
            if not (pod.ready and pod.ip):
                continue
            known = st.knobs.get(pod.name)
            result = known[1] if known is not None else PushResult(None, "not pushed yet")
            out.append(
                status.PodKnobState(pod.name, result.revision, result.message, result.rejected)
            )
        return out

    async def _write_status(
        self, st: ServiceState, target: Target | None, problem: tuple[str, str] | None
    ) -> None:
        body = st.body
        meta = body["metadata"]
        old: dict[str, Any] = body.get("status") or {}
        if target is None:  # invalid spec: only the Degraded condition is meaningful
            gen = int(meta.get("generation", 0))
            reason, message = problem or ("InvalidSpec", "")
            conds = [status.condition("Degraded", True, reason, message, gen)]
            new: dict[str, Any] = {
                "conditions": status.with_transition_times(
                    conds, old.get("conditions") or [], _now()
                )
            }
            new["conditions"] += [
                c for c in old.get("conditions") or [] if c.get("type") != "Degraded"
            ]
        else:
            obs = status.Observed(
                generation=target.generation,
                desired_replicas=target.spec.desired_replicas(),
                selector=target.selector_string,
                knobs_revision=target.spec.knobs().revision(),
                deployment=st.deployment,
                pods=self._pod_states(st),
                problem=problem,
                unschedulable=[p.unschedulable for p in st.pods.values() if p.unschedulable],
            )
            new = status.operator_status(obs, old, _now(), reconciled=problem is None)
        if not status.differs(new, old):
            return
        for kind, reason, message in status.transition_events(
            old.get("conditions") or [], new["conditions"]
        ):
            await self._event(st, kind, reason, message)
        try:
            result = await self.kube.patch_status(meta["namespace"], meta["name"], new)
        except ApiError as exc:
            if exc.status == 404:
                return  # deleted meanwhile
            raise
        st.body = {**st.body, "status": result.get("status", {})}

    async def _event(self, st: ServiceState, kind: str, reason: str, message: str) -> None:
        body = {"apiVersion": "sloserve.io/v1alpha1", "kind": "LLMService", **st.body}
        await self.kube.post_event(body, kind, reason, message)
