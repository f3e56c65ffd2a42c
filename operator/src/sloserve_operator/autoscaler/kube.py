"""The autoscaler's Kubernetes edge: read pods and rollout state, write /scale, status, Events.

Reading costs no API call: the operator's controller already watches every engine pod and
Deployment into the state cache (``cache.py``), and ``replica_state`` turns a cache entry into
the autoscaler's view (a pure function,
unit-tested without a cluster). The autoscaler writes only ``spec.replicas`` (through the
scale subresource, like HPA), ``status.lastScale``, ``status.sloAttainment``,
``status.kvPressure``, ``status.activity``, ``status.lastRequestTime``,
``status.lastColdStartSeconds``, ``status.engineMode`` and Events; the operator owns everything
else.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..api import v1alpha1 as api
from ..cache import PodInfo
from ..k8s import ApiError, Kube, collection_path
from ..render.target import HTTP_PORT, Target
from .decision import Reason
from .engine_mode import mismatch, observed_mode
from .loop import Evaluation, ReplicaState
from .metrics_source import MetricsEndpoint

FIELD_MANAGER = "sloserve-autoscaler"
log = logging.getLogger(__name__)
JsonObj = Mapping[str, Any]

_EXPLAINED_HOLDS = frozenset(
    {Reason.PENDING, Reason.ROLLOUT, Reason.NO_METRICS, Reason.SLO_CEILING}
)
_WARNINGS = frozenset({Reason.PENDING})


def _endpoints(pods: Iterable[PodInfo]) -> tuple[MetricsEndpoint, ...]:
    ready = sorted((p for p in pods if p.ready and p.ip), key=lambda p: p.name)
    return tuple(MetricsEndpoint(p.name, f"http://{p.ip}:{HTTP_PORT}") for p in ready)


def replica_state(
    target: Target,
    pods: Iterable[PodInfo],
    deployment: JsonObj | None,
    routers: Iterable[PodInfo] = (),
) -> ReplicaState:
    """The autoscaler's view from the operator's state cache: no API call per evaluation.

    Ready pods with an IP serve and are scraped; pods the scheduler cannot place (no free
    GPU) are pending. Ready routers are read for the router view when the tier is on.
    """
    pods = list(pods)
    return ReplicaState(
        namespace=target.namespace,
        name=target.name,
        current_replicas=target.spec.desired_replicas(),
        ready_pods=_endpoints(pods),
        pending_replicas=sum(1 for p in pods if p.unschedulable),
        rollout_in_progress=rollout_in_progress(deployment),
        ready_routers=_endpoints(routers) if target.routed else (),
    )


def rollout_in_progress(deployment: JsonObj | None) -> bool:
    """A new pod template is being rolled out: the Deployment has not observed its latest
    generation, or pods of an older template are still running. A scale-up is not a rollout:
    its new pods count as updated at once."""
    if not deployment:
        return False
    generation = int(deployment.get("metadata", {}).get("generation", 0))
    status = deployment.get("status") or {}
    if int(status.get("observedGeneration", 0)) < generation:
        return True
    return int(status.get("replicas", 0)) > int(status.get("updatedReplicas", 0))


def event_worthy(evaluation: Evaluation, previous_reason: Reason | None) -> bool:
    """Every change of replicas, and holds that explain themselves when they begin."""
    reason = evaluation.decision.reason
    return evaluation.scales or (reason in _EXPLAINED_HOLDS and reason != previous_reason)


def event_type(evaluation: Evaluation) -> str:
    """Warning only for something wrong: pods pending for lack of GPUs, or metrics that do
    not come because scrapes fail. No metrics yet from pods that just started is normal."""
    reason = evaluation.decision.reason
    if reason in _WARNINGS or (reason is Reason.NO_METRICS and evaluation.scrape.failures):
        return "Warning"
    return "Normal"


def event_body(body: JsonObj, evaluation: Evaluation, now: dt.datetime) -> dict[str, Any]:
    reason = evaluation.decision.reason
    state = evaluation.state
    message = evaluation.decision.message
    if reason is Reason.PENDING:
        message = (
            f"not scaling beyond {state.current_replicas}: {state.pending_replicas} pod(s) "
            f"pending (no free GPU). {message}"
        )
    failures = evaluation.scrape.failures
    if reason is Reason.NO_METRICS and not failures:
        message = (
            f"waiting for the first metrics of {len(state.ready_pods)} ready pod(s); "
            f"normal while engines start. {message}"
        )
    if failures:
        failed = ", ".join(f"{k}: {v}" for k, v in sorted(failures.items()))
        message += f" scrapeFailures=[{failed}]"
    return _event(body, event_type(evaluation), reason.value, message, now)


OVERRIDDEN = "ScaleOverridden"


def override_event(
    body: JsonObj,
    evaluation: Evaluation,
    last_write: tuple[int, int] | None,
    bounds: tuple[int, int],
    now: dt.datetime,
) -> dict[str, Any] | None:
    """The Event that explains why a hand-set ``spec.replicas`` is being changed back.

    ``last_write`` is (replicas before, replicas after) of this loop's previous decision. A
    count that is neither is someone else's (``kubectl scale``); the cache showing the value
    from before our own write (a watch that lags) is not. None when there is nothing to say.
    """
    current, desired = evaluation.state.current_replicas, evaluation.decision.desired_replicas
    if last_write is None or current in last_write or desired == current:
        return None
    low, high = bounds
    message = (
        f"spec.replicas {current} was set by hand; the autoscaler owns replicas between "
        f"minReplicas ({low}) and maxReplicas ({high}) and sets {desired} "
        f"({evaluation.decision.reason.value}). To pin replicas set autoscaling.minReplicas = "
        "maxReplicas, or disable autoscaling (autoscaling.enabled: false)"
    )
    return _event(body, "Warning", OVERRIDDEN, message, now)


ENGINE_MODE_DIFFERS = "EngineModeDiffers"


def engine_mode_event(
    body: JsonObj,
    evaluation: Evaluation,
    spec_simulated: bool,
    previous: api.EngineModeObserved | None,
    now: dt.datetime,
) -> dict[str, Any] | None:
    """A Normal Event when the engines' own mode differs from the spec's, once per change of
    the observed mode (``previous``: the last one seen). Normal, not Warning: on the dev
    cluster it is expected, and the service serves either way."""
    modes = [s.mode for s in evaluation.scrape.samples]
    message = mismatch(spec_simulated, modes)
    if message is None or observed_mode(modes) == previous:
        return None
    return _event(body, "Normal", ENGINE_MODE_DIFFERS, message, now)


def _event(body: JsonObj, kind: str, reason: str, message: str, now: dt.datetime) -> dict[str, Any]:
    meta = body["metadata"]
    stamp = now.isoformat().replace("+00:00", "Z")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "reason": reason,
        "message": message[:1024],
        "type": kind,
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def _stamp(when: dt.datetime) -> str:
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def status_patch(evaluation: Evaluation, now: dt.datetime) -> dict[str, Any]:
    """Measured signals and activity always; ``lastRequestTime`` with a router view;
    ``lastScale`` only when the replicas change, ``lastColdStartSeconds`` after a wake,
    ``engineMode`` when a pod answered."""
    decision = evaluation.decision
    signals = decision.signals
    status: dict[str, Any] = {
        "sloAttainment": None if signals.attainment is None else round(signals.attainment, 2),
        "kvPressure": None
        if signals.kv_pressure_mean is None
        else round(signals.kv_pressure_mean, 2),
        "activity": decision.activity,
    }
    if signals.router_queued is not None:
        status["lastRequestTime"] = _stamp(now - dt.timedelta(seconds=signals.idle_s))
    if decision.cold_start_s is not None:
        status["lastColdStartSeconds"] = round(decision.cold_start_s, 1)
    mode = observed_mode(s.mode for s in evaluation.scrape.samples)
    if mode is not None:  # no pod answered: the last observation stands
        status["engineMode"] = mode
    if evaluation.scales:
        status["lastScale"] = api.LastScale(
            time=now.isoformat().replace("+00:00", "Z"),
            from_replicas=evaluation.state.current_replicas,
            to_replicas=evaluation.decision.desired_replicas,
            reason=evaluation.decision.reason.value,
            message=evaluation.decision.message[:4096],
        ).model_dump(by_alias=True)
    return {"status": status}


STATUS_STEP = 0.05
STATUS_REFRESH_S = 60.0


def status_due(new: JsonObj, old: JsonObj | None, since_last_s: float) -> bool:
    """Whether a status patch is worth an API write: a scale, a cold start, a change of
    activity or engine mode, a signal that moved by ``STATUS_STEP``, one that appeared or
    vanished, or ``STATUS_REFRESH_S`` without a write (which also refreshes ``lastRequestTime``)."""
    if old is None or since_last_s >= STATUS_REFRESH_S:
        return True
    if "lastScale" in new["status"] or "lastColdStartSeconds" in new["status"]:
        return True
    for key in ("activity", "engineMode"):
        if key in new["status"] and new["status"][key] != old["status"].get(key):
            return True
    for key in ("sloAttainment", "kvPressure"):
        a, b = new["status"].get(key), old["status"].get(key)
        if (a is None) != (b is None) or (a is not None and abs(a - b) >= STATUS_STEP):
            return True
    return False


class KubeEdge:
    """Writes through the operator's :class:`~sloserve_operator.k8s.Kube` (its retries and
    request metrics), under the autoscaler's own field manager."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    async def apply(
        self,
        body: JsonObj,
        evaluation: Evaluation,
        previous_reason: Reason | None,
        now: dt.datetime,
        status: JsonObj | None,
        events: Sequence[JsonObj] = (),
    ) -> None:
        """Only the writes that carry news: often none at all. ``status`` is the
        :func:`status_patch` to write, or None when :func:`status_due` said it is not due;
        ``events`` the :func:`override_event` and :func:`engine_mode_event` to post, if any."""
        meta = body["metadata"]
        path = f"{collection_path(api.API_VERSION, api.KIND, meta['namespace'])}/{meta['name']}"
        if evaluation.scales:
            replicas = {"spec": {"replicas": evaluation.decision.desired_replicas}}
            await self._merge_patch(f"{path}/scale", replicas)
        if status is not None:
            await self._merge_patch(f"{path}/status", status)
        events = list(events)
        if event_worthy(evaluation, previous_reason):
            events.append(event_body(body, evaluation, now))
        for event in events:
            try:
                await self._kube.create(event)
            except ApiError as exc:  # an Event is best effort; the scale itself happened
                log.warning("autoscaler: could not post event on %s: %s", meta["name"], exc)

    async def _merge_patch(self, path: str, body: JsonObj) -> None:
        await self._kube.request(
            "PATCH",
            path,
            body=body,
            query={"fieldManager": FIELD_MANAGER},
            content_type="application/merge-patch+json",
        )
