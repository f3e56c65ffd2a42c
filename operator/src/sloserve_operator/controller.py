"""The reconciler: watch events in, server-side applies, knob pushes and status out.

Kopf delivers events (``handlers.py``); this module writes what they say into the operator's
state cache (``cache.py``, which the autoscaler reads), marks the owning ``LLMService`` dirty
and lets a pool of workers reconcile dirty services one at a time per service
(``WorkQueue``). What a reconcile must do is decided without I/O (``plan.py``). A reconcile
is level-triggered and idempotent, so an operator restart mid-reconcile simply converges on
the next one. It costs API calls only when something changed: children are re-applied when
the spec changed or a watch event shows they were deleted or edited by someone else, status
is patched only when it differs, and knob pushes go to pods (over HTTP), not to the API
server. That is what keeps an idle operator at ~0 API calls per minute.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.router.knobs import RouterKnobs

from . import knobdiff, knobpush, plan, render, status
from .cache import Key, PodInfo, ServiceView, StateCache, is_router, pod_info
from .k8s import ApiError, Kube, object_path
from .knobpush import AdminEndpoint, PushResult
from .metrics import OperatorMetrics
from .plan import Applied
from .render import monitor, secret
from .render.target import ADMIN_TOKEN_KEY, SERVICE_LABEL, Target
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

MONITOR_CHECK_S = 60.0
MAX_BACKOFF_S = 10.0
STATUS_DEBOUNCE_S = 0.5


@dataclass
class ReconcileState:
    """The controller's own bookkeeping for one service; what the watches show of the service
    itself lives in the shared :class:`~.cache.StateCache`."""

    applied: dict[str, Applied] = field(default_factory=dict)
    knobs: dict[str, tuple[str, PushResult]] = field(default_factory=dict)
    router_knobs: dict[str, tuple[str, PushResult]] = field(default_factory=dict)
    token: str | None = None
    reconciled_generation: int | None = None
    recreate: set[str] = field(default_factory=set)
    failures: int = 0
    knobs_told: dict[str, Any] | None = None
    """The knob documents (engines, plus ``router`` when routed) as of the last KnobsApplied
    event, or first sight: the next event says what changed since."""


@dataclass(frozen=True)
class ControllerConfig:
    workers: int = 16
    knob_resync_s: float = 300.0
    """Re-push knobs to every pod this often (catches engines changed behind our back)."""
    full_resync_s: float = 1800.0
    """Re-apply every child this often (catches deletions missed while a watch was down)."""


def _knob_documents(target: Target) -> dict[str, Any]:
    doc: dict[str, Any] = target.spec.knobs().model_dump(by_alias=True)
    if target.routed:
        doc["router"] = target.spec.router_knobs().model_dump(by_alias=True)
    return doc


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key_of(obj: Mapping[str, Any]) -> Key | None:
    meta = obj.get("metadata", {})
    service = (meta.get("labels") or {}).get(SERVICE_LABEL)
    return (meta.get("namespace", ""), service) if service else None


class Controller:
    def __init__(
        self,
        kube: Kube,
        http: httpx.AsyncClient,
        metrics: OperatorMetrics,
        config: ControllerConfig | None = None,
        cache: StateCache | None = None,
    ) -> None:
        self.kube, self.http, self.metrics = kube, http, metrics
        self.config = config or ControllerConfig()
        self.cache = cache if cache is not None else StateCache()
        """Written here, from the watches; read by the autoscaler."""
        self.states: dict[Key, ReconcileState] = {}
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
            self.cache.pop(key)
            self.states.pop(key, None)
            self.queue.cancel_retry(key)
            self.metrics.forget(*key)
            return  # children go with it: owner references, garbage collector
        view = self.cache.get(key)
        if view is None or view.body["metadata"].get("uid") != meta.get("uid"):
            view = ServiceView(body=obj)  # new, or deleted and re-created
            self.cache.put(key, view)
            self.states[key] = ReconcileState()
        view.body = obj
        if self.states[key].reconciled_generation != meta.get("generation"):
            self.queue.add(key)

    def on_child(self, event_type: str | None, obj: dict[str, Any]) -> None:
        key = _key_of(obj)
        view = self.cache.get(key) if key else None
        if key is None or view is None:
            return  # its LLMService's own event reconciles everything
        st = self.states[key]
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
            after = seen if event_type != "DELETED" else None
            if is_router(obj):
                status_changed = seen != view.router_deployment
                view.router_deployment = after
            else:
                status_changed = seen != view.deployment
                view.deployment = after
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
        view = self.cache.get(key) if key else None
        if key is None or view is None:
            return
        name = obj["metadata"]["name"]
        router = is_router(obj)
        pods = view.routers if router else view.pods
        if event_type == "DELETED" or obj["metadata"].get("deletionTimestamp"):
            st = self.states[key]
            (st.router_knobs if router else st.knobs).pop(name, None)
            if pods.pop(name, None) is not None:
                self.queue.add(key)
            return
        info = pod_info(obj)
        if pods.get(name) != info:
            pods[name] = info
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
                st.router_knobs.clear()
                if full:
                    st.applied.clear()
                self.queue.add(key)

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, key: Key) -> float | None:
        """One pass for one service; returns a retry delay when not converged."""
        st, view = self.states.get(key), self.cache.get(key)
        if st is None or view is None:
            return None
        try:
            target = Target.from_body(view.body)
        except ValidationError as exc:  # the CRD schema should have caught it: say so, stop
            try:
                await self._write_status(view, st, None, ("InvalidSpec", str(exc)[:2000]))
            except ApiError:
                return MAX_BACKOFF_S
            return None
        problem: tuple[str, str] | None = None
        try:
            await self._ensure_token(target, st)
            await self._apply_children(target, view, st)
        except ApiError as exc:
            problem = ("ApplyFailed", str(exc)[:2000])
            self.metrics.reconcile_errors.labels(*key).inc()
        converged = await self._push_knobs(target, view, st) and problem is None
        try:
            await self._write_status(view, st, target, problem)
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

    async def _ensure_token(self, target: Target, st: ReconcileState) -> None:
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

    async def _apply_children(self, target: Target, view: ServiceView, st: ReconcileState) -> None:
        rendered = render.children(target, with_service_monitor=await self._with_monitor())
        applied: list[str] = []
        for child in plan.children_to_apply(rendered, st.applied):
            result = await self.kube.apply(child.obj)
            meta = result.get("metadata", {})
            st.applied[child.name] = Applied(
                child.digest, str(meta.get("resourceVersion", "")), int(meta.get("generation", 0))
            )
            if child.obj["kind"] == "Deployment":
                seen = {"metadata": {"generation": meta.get("generation", 0)}}
                seen["status"] = result.get("status", {})
                if is_router(child.obj):
                    view.router_deployment = view.router_deployment or seen
                else:
                    view.deployment = view.deployment or seen
            applied.append(child.name)
        recreated = sorted(st.recreate & set(applied))
        st.recreate -= set(applied)
        if recreated:
            await self._event(view, "Normal", "Recreated", f"recreated {', '.join(recreated)}")
        elif applied and st.reconciled_generation is not None:
            msg = f"generation {target.generation}: applied {', '.join(applied)}"
            await self._event(view, "Normal", "Applied", msg)

    async def _push_knobs(self, target: Target, view: ServiceView, st: ReconcileState) -> bool:
        """Bring every ready engine, and router, to the spec's knob revisions; True when all
        run them."""
        applied, ready = await self._push(st, view.pods, st.knobs, target.spec.knobs())
        self.metrics.knobs_applied_pods.labels(target.namespace, target.name).set(applied)
        if not target.routed:
            return applied == ready
        on, routers = await self._push(
            st, view.routers, st.router_knobs, target.spec.router_knobs()
        )
        return applied == ready and on == routers

    async def _push(
        self,
        st: ReconcileState,
        pods: Mapping[str, PodInfo],
        pushed: dict[str, tuple[str, PushResult]],
        knobs: Knobs | RouterKnobs,
    ) -> tuple[int, int]:
        """Push ``knobs`` to the ready ``pods`` not known to run them; (on revision, ready)."""
        revision = knobs.revision()
        todo = plan.knob_plan(pods.values(), pushed, revision)
        for name in todo.forget:
            del pushed[name]
        if todo.push and st.token is not None:
            started = time.perf_counter()
            endpoints = [AdminEndpoint(p.name, p.uid, p.ip) for p in todo.push]
            results = await knobpush.push(self.http, endpoints, knobs, st.token)
            self.metrics.knob_push_duration.observe(time.perf_counter() - started)
            uids = {p.name: p.uid for p in todo.push}
            for name, result in results.items():
                pushed[name] = (uids[name], result)
            if any(r.status == 401 for r in results.values()):
                st.token = None  # the Secret changed under us: read it again next pass
        return plan.pods_on_revision(todo.ready, pushed, revision), len(todo.ready)

    async def _write_status(
        self,
        view: ServiceView,
        st: ReconcileState,
        target: Target | None,
        problem: tuple[str, str] | None,
    ) -> None:
        body = view.body
        meta = body["metadata"]
        old: dict[str, Any] = body.get("status") or {}
        knobs: dict[str, Any] | None = None
        change = ""
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
            router_revision = target.spec.router_knobs().revision() if target.routed else None
            knobs = _knob_documents(target)
            st.knobs_told = st.knobs_told or knobs
            change = ", ".join(knobdiff.changed_fields(st.knobs_told, knobs))
            obs = status.Observed(
                generation=target.generation,
                desired_replicas=target.spec.desired_replicas(),
                selector=target.selector_string,
                knobs_revision=target.spec.knobs().revision(),
                deployment=view.deployment,
                router_deployment=view.router_deployment if target.routed else None,
                endpoint=target.endpoint,
                router_knobs_revision=router_revision,
                pods=plan.pod_knob_states(view.pods.values(), st.knobs)
                + (
                    plan.pod_knob_states(view.routers.values(), st.router_knobs, router_revision)
                    if target.routed
                    else []
                ),
                problem=problem,
                unschedulable=[p.unschedulable for p in view.pods.values() if p.unschedulable],
            )
            new = status.operator_status(obs, old, _now(), reconciled=problem is None)
        if not status.differs(new, old):
            return
        for kind, reason, message in status.transition_events(
            old.get("conditions") or [], new["conditions"], change
        ):
            await self._event(view, kind, reason, message)
            if reason == "KnobsApplied" and knobs is not None:
                st.knobs_told = knobs
        try:
            result = await self.kube.patch_status(meta["namespace"], meta["name"], new)
        except ApiError as exc:
            if exc.status == 404:
                return  # deleted meanwhile
            raise
        view.body = {**view.body, "status": result.get("status", {})}

    async def _event(self, view: ServiceView, kind: str, reason: str, message: str) -> None:
        body = {"apiVersion": "sloserve.io/v1alpha1", "kind": "LLMService", **view.body}
        await self.kube.post_event(body, kind, reason, message)
