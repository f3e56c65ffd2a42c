"""Pure status computation: observed children and pods in, the status the operator owns out.

Conditions follow metav1.Condition: ``lastTransitionTime`` moves only when ``status`` flips,
and every condition carries the generation it was computed for, so clients can tell a stale
True from a current one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .api import v1alpha1 as api


@dataclass(frozen=True)
class PodKnobState:
    """One ready pod's knob state as the operator last saw it."""

    name: str
    revision: int | None
    message: str = ""
    rejected: bool = False
    wanted: int | None = None
    """The revision this pod should run (routers run the router document); None: the
    engines' ``knobs_revision``."""


@dataclass(frozen=True)
class Observed:
    """Everything the status is computed from."""

    generation: int
    desired_replicas: int
    selector: str
    knobs_revision: int
    deployment: Mapping[str, Any] | None
    """The Deployment's ``metadata.generation`` and ``status`` (None before it exists)."""
    pods: Sequence[PodKnobState]
    problem: tuple[str, str] | None = None
    """(reason, message) when rendering or applying failed."""
    unschedulable: Sequence[str] = ()
    """The scheduler's message for each engine pod it cannot place (e.g. no free GPU)."""
    router_deployment: Mapping[str, Any] | None = None
    """The router Deployment's generation and status; None without a router tier."""
    endpoint: str = ""
    """Where clients send requests (the LLMService's Service)."""
    router_knobs_revision: int | None = None
    """Revision of the router knob document; None without a router tier."""


def condition(type_: str, ok: bool | None, reason: str, message: str, gen: int) -> dict[str, Any]:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": gen,
    }


def _deployment_failure(deployment: Mapping[str, Any]) -> str | None:
    for cond in deployment.get("status", {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return str(cond.get("message", "replica failure"))
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return str(cond.get("message", "progress deadline exceeded"))
    return None


def knobs_condition(obs: Observed) -> dict[str, Any]:
    gen, rev = obs.generation, obs.knobs_revision
    if not obs.pods:
        return condition("KnobsApplied", None, "NoReadyPods", "no ready engine pod yet", gen)
    rejected = [p for p in obs.pods if p.rejected]
    if rejected:
        text = "; ".join(f"{p.name}: {p.message}" for p in rejected)
        return condition("KnobsApplied", False, "KnobsRejected", text, gen)
    behind = [p for p in obs.pods if p.revision != (rev if p.wanted is None else p.wanted)]
    if behind:
        text = "; ".join(f"{p.name}: {p.message or f'runs revision {p.revision}'}" for p in behind)
        return condition("KnobsApplied", False, "Pending", f"revision {rev} not yet on {text}", gen)
    text = f"all pods run revision {rev}"
    if obs.router_knobs_revision is not None:
        text = f"engines run revision {rev}, routers {obs.router_knobs_revision}"
    return condition("KnobsApplied", True, "AllPodsApplied", text, gen)


def conditions(obs: Observed) -> list[dict[str, Any]]:
    gen, dep = obs.generation, obs.deployment
    dstatus: Mapping[str, Any] = (dep or {}).get("status", {})
    ready = int(dstatus.get("readyReplicas", 0))
    updated = int(dstatus.get("updatedReplicas", 0))
    total = int(dstatus.get("replicas", 0))
    rolled = dep is not None and int(dstatus.get("observedGeneration", 0)) >= int(
        dep.get("metadata", {}).get("generation", 0)
    )
    available = _available(obs, ready)
    settled = rolled and ready == updated == total == obs.desired_replicas
    progressing = condition(
        "Progressing",
        not settled,
        "Stable" if settled else ("RollingOut" if updated < total else "Scaling"),
        f"{updated} updated, {ready} ready, {total} existing, {obs.desired_replicas} desired",
        gen,
    )
    failure = obs.problem or (
        ("DeploymentFailing", msg) if dep and (msg := _deployment_failure(dep)) else None
    )
    if failure is None and obs.unschedulable:
        pending = len(obs.unschedulable)
        text = f"{obs.unschedulable[0]}; {pending} of {obs.desired_replicas} replicas pending"
        failure = ("InsufficientCapacity", text)
    degraded = condition(
        "Degraded",
        failure is not None,
        failure[0] if failure else "AsExpected",
        failure[1] if failure else "",
        gen,
    )
    return [available, progressing, degraded, knobs_condition(obs)]


def _available(obs: Observed, ready: int) -> dict[str, Any]:
    """Serving needs a ready engine, or, scaled to zero, a ready router to hold and wake."""
    gen, text = obs.generation, f"{ready}/{obs.desired_replicas} replicas ready"
    if obs.router_deployment is None:
        ok = ready >= 1
        return condition(
            "Available", ok, "MinimumReplicasReady" if ok else "NoReadyReplicas", text, gen
        )
    routers = int(obs.router_deployment.get("status", {}).get("readyReplicas", 0))
    text += f", {routers} routers ready"
    if routers < 1:
        return condition("Available", False, "NoReadyRouters", text, gen)
    if ready >= 1:
        return condition("Available", True, "MinimumReplicasReady", text, gen)
    if obs.desired_replicas == 0:
        return condition("Available", True, "ScaledToZero", text + "; routers wake it", gen)
    return condition("Available", False, "NoReadyReplicas", text, gen)


def with_transition_times(
    new: Sequence[dict[str, Any]], old: Sequence[Mapping[str, Any]], now: str
) -> list[dict[str, Any]]:
    """Keep ``lastTransitionTime`` from ``old`` for conditions whose status did not flip."""
    before = {c.get("type"): c for c in old}
    out = []
    for cond in new:
        prev = before.get(cond["type"])
        same = prev is not None and prev.get("status") == cond["status"]
        when = prev.get("lastTransitionTime", now) if prev is not None and same else now
        out.append({**cond, "lastTransitionTime": when})
    return out


def _pod_entry(pod: PodKnobState) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": pod.name, "message": pod.message}
    if pod.revision is not None:  # absent rather than null: compares equal to the stored form
        entry["knobsRevision"] = pod.revision
    return entry


def operator_status(
    obs: Observed, old_status: Mapping[str, Any], now: str, *, reconciled: bool
) -> dict[str, Any]:
    """The ``status`` fields the operator owns (merge-patched; the autoscaler owns the rest)."""
    dstatus: Mapping[str, Any] = (obs.deployment or {}).get("status", {})
    rstatus: Mapping[str, Any] = (obs.router_deployment or {}).get("status", {})
    status = {
        "observedGeneration": obs.generation
        if reconciled
        else int(old_status.get("observedGeneration", 0)),
        "replicas": int(dstatus.get("replicas", 0)),
        "readyReplicas": int(dstatus.get("readyReplicas", 0)),
        "routers": int(rstatus.get("replicas", 0)),
        "readyRouters": int(rstatus.get("readyReplicas", 0)),
        "endpoint": obs.endpoint,
        "selector": obs.selector,
        "knobsRevision": obs.knobs_revision,
        "routerKnobsRevision": obs.router_knobs_revision,
        "pods": [_pod_entry(p) for p in sorted(obs.pods, key=lambda p: p.name)],
        "conditions": with_transition_times(
            conditions(obs), old_status.get("conditions") or [], now
        ),
    }
    api.LLMServiceStatus.model_validate(status)  # the CRD schema would reject it anyway
    return status


def differs(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether patching ``new`` would change anything in ``old`` (the live status)."""
    return any(old.get(key) != value for key, value in new.items())


EVENTFUL = {
    # (condition type, status) -> (event type, reason or None for the condition's reason)
    ("Available", "True"): ("Normal", "Available"),
    ("Available", "False"): ("Warning", "Unavailable"),
    ("Degraded", "True"): ("Warning", None),
    ("KnobsApplied", "True"): ("Normal", "KnobsApplied"),
}


def transition_events(
    old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]], knobs_change: str = ""
) -> list[tuple[str, str, str]]:
    """Events (type, reason, message) worth posting for the change from ``old`` to ``new``.

    Only transitions and new problems are reported, never steady state, so a resync or a
    restarted operator posts nothing. ``knobs_change`` (from :mod:`.knobdiff`) is appended to
    ``KnobsApplied``: the revision alone does not say what changed.
    """
    before = {c.get("type"): c for c in old}
    events = []
    for cond in new:
        prev = before.get(cond["type"])
        same_status = prev is not None and prev.get("status") == cond["status"]
        same_text = same_status and prev is not None and prev.get("message") == cond["message"]
        kind_reason = EVENTFUL.get((cond["type"], cond["status"]))
        if cond["reason"] == "KnobsRejected":
            kind_reason = ("Warning", "KnobsRejected")
        if kind_reason is None or same_text:
            continue
        if cond["type"] == "Available" and (
            same_status or (prev is None and cond["status"] == "False")
        ):
            continue
        kind, reason = kind_reason
        message = str(cond["message"])
        if reason == "KnobsApplied" and knobs_change:
            message += f"; changed {knobs_change}"
        events.append((kind, reason or str(cond["reason"]), message))
    return events
