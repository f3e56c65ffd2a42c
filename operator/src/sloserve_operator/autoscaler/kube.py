"""The autoscaler's Kubernetes edge: read pods and rollout state, write /scale, status, Events.

Reading is split into pure functions over API JSON (``ready_endpoints``, ``pending_count``,
``rollout_in_progress``) so their rules are unit-tested without a cluster. The autoscaler
writes only ``spec.replicas`` (through the scale subresource, like HPA), ``status.lastScale``,
``status.sloAttainment``, ``status.kvPressure`` and Events; the operator owns everything else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes_asyncio import client

from ..api import v1alpha1 as api
from ..render.target import HTTP_PORT, Target
from .decision import Reason
from .loop import Evaluation, ServiceState
from .metrics_source import PodEndpoint

FIELD_MANAGER = "sloserve-autoscaler"
JsonObj = Mapping[str, Any]

_EXPLAINED_HOLDS = frozenset(
    {Reason.PENDING, Reason.ROLLOUT, Reason.NO_METRICS, Reason.SLO_CEILING, Reason.STABILIZING}
)
_WARNINGS = frozenset({Reason.PENDING, Reason.NO_METRICS})


def _condition(pod: JsonObj, kind: str) -> JsonObj:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def _http_port(pod: JsonObj) -> int:
    for container in pod.get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == "http":
                return int(port["containerPort"])
    return HTTP_PORT


def ready_endpoints(pods: Sequence[JsonObj]) -> tuple[PodEndpoint, ...]:
    """Pods that are Ready, have an IP and are not being deleted: the ones serving traffic."""
    out = []
    for pod in pods:
        ip = pod.get("status", {}).get("podIP")
        terminating = pod.get("metadata", {}).get("deletionTimestamp") is not None
        if ip and not terminating and _condition(pod, "Ready").get("status") == "True":
            out.append(PodEndpoint(pod["metadata"]["name"], f"http://{ip}:{_http_port(pod)}"))
    return tuple(sorted(out, key=lambda p: p.name))


def pending_count(pods: Sequence[JsonObj]) -> int:
    """Pods the scheduler could not place (no free GPU): more replicas would only add to them."""
    return sum(
        1
        for pod in pods
        if pod.get("status", {}).get("phase") == "Pending"
        and _condition(pod, "PodScheduled").get("status") == "False"
    )


def rollout_in_progress(deployment: JsonObj | None) -> bool:
    """``kubectl rollout status`` semantics, minus availability: a scale-up is not a rollout."""
    if not deployment:
        return False
    meta, spec, status = deployment["metadata"], deployment["spec"], deployment.get("status", {})
    if int(status.get("observedGeneration", 0)) < int(meta.get("generation", 0)):
        return True
    updated = int(status.get("updatedReplicas", 0))
    return updated < int(spec.get("replicas", 1)) or int(status.get("replicas", 0)) > updated


def event_worthy(evaluation: Evaluation, previous_reason: Reason | None) -> bool:
    """Every change of replicas, and holds that explain themselves when they begin."""
    reason = evaluation.decision.reason
    return evaluation.scales or (reason in _EXPLAINED_HOLDS and reason != previous_reason)


def event_body(body: JsonObj, evaluation: Evaluation, now: dt.datetime) -> dict[str, Any]:
    meta = body["metadata"]
    stamp = now.isoformat().replace("+00:00", "Z")
    reason = evaluation.decision.reason
    state = evaluation.state
    message = evaluation.decision.message
    if reason is Reason.PENDING:
        message = (
            f"not scaling beyond {state.current_replicas}: {state.pending_replicas} pod(s) "
            f"pending (no free GPU). {message}"
        )
    if evaluation.scrape.failures:
        failed = ", ".join(f"{k}: {v}" for k, v in sorted(evaluation.scrape.failures.items()))
        message += f" scrapeFailures=[{failed}]"
    return {
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "reason": reason.value,
        "message": message[:1024],
        "type": "Warning" if reason in _WARNINGS else "Normal",
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def status_patch(evaluation: Evaluation, now: dt.datetime) -> dict[str, Any]:
    """Measured signals always; ``lastScale`` only when the replicas change."""
    signals = evaluation.decision.signals
    status: dict[str, Any] = {
        "sloAttainment": None if signals.attainment is None else round(signals.attainment, 2),
        "kvPressure": None
        if signals.kv_pressure_mean is None
        else round(signals.kv_pressure_mean, 2),
    }
    if evaluation.scales:
        status["lastScale"] = api.LastScale(
            time=now.isoformat().replace("+00:00", "Z"),
            from_replicas=evaluation.state.current_replicas,
            to_replicas=evaluation.decision.desired_replicas,
            reason=evaluation.decision.reason.value,
            message=evaluation.decision.message[:4096],
        ).model_dump(by_alias=True)
    return {"status": status}


class KubeEdge:
    """API calls for one operator process; the clients share one ``ApiClient``."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def _json(self, obj: Any) -> Any:
        return self._api.sanitize_for_serialization(obj)

    async def read_state(self, target: Target) -> ServiceState:
        pods = await self.core.list_namespaced_pod(
            target.namespace, label_selector=target.selector_string
        )
        pod_list = self._json(pods).get("items", [])
        try:
            dep = self._json(
                await self.apps.read_namespaced_deployment(target.name, target.namespace)
            )
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            dep = None
        return ServiceState(
            namespace=target.namespace,
            name=target.name,
            current_replicas=target.spec.desired_replicas(),
            ready_pods=ready_endpoints(pod_list),
            pending_replicas=pending_count(pod_list),
            rollout_in_progress=rollout_in_progress(dep),
        )

    async def apply(
        self,
        body: JsonObj,
        evaluation: Evaluation,
        previous_reason: Reason | None,
        now: dt.datetime,
    ) -> None:
        meta = body["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        if evaluation.scales:
            await self.custom.patch_namespaced_custom_object_scale(
                api.GROUP,
                api.VERSION,
                namespace,
                api.PLURAL,
                name,
                {"spec": {"replicas": evaluation.decision.desired_replicas}},
                field_manager=FIELD_MANAGER,
            )
        await self.custom.patch_namespaced_custom_object_status(
            api.GROUP,
            api.VERSION,
            namespace,
            api.PLURAL,
            name,
            status_patch(evaluation, now),
            field_manager=FIELD_MANAGER,
        )
        if event_worthy(evaluation, previous_reason):
            event: Any = event_body(body, evaluation, now)  # the client serializes plain JSON too
            await self.core.create_namespaced_event(namespace, event)
