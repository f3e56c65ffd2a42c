"""What one reconcile must do, decided without I/O (the controller then does it).

Two diffs keep an idle operator at ~0 API calls: rendered children against what was last
applied (by content digest), and ready pods against the knob revision each last acknowledged
(by pod uid, so a re-created pod of the same name is pushed again).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import status
from .cache import PodInfo
from .knobpush import PushResult


@dataclass(frozen=True)
class Applied:
    """What the operator last applied for one child, to skip no-op applies."""

    digest: str
    resource_version: str
    generation: int


def child_name(obj: Mapping[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def digest(obj: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ChildApply:
    name: str
    digest: str
    obj: dict[str, Any]


def children_to_apply(
    rendered: Iterable[dict[str, Any]], applied: Mapping[str, Applied]
) -> list[ChildApply]:
    """The rendered children whose content differs from (or was never) applied, in order."""
    out = []
    for obj in rendered:
        name, dig = child_name(obj), digest(obj)
        record = applied.get(name)
        if record is None or record.digest != dig:
            out.append(ChildApply(name, dig, obj))
    return out


Pushed = Mapping[str, tuple[str, PushResult]]
"""Pod name -> (the pod uid pushed to, what it answered)."""


@dataclass(frozen=True)
class KnobPlan:
    ready: list[PodInfo]
    """Pods that serve: ready and with an IP. Only these get (and count for) knobs."""
    forget: set[str]
    """Pushed pod names that no longer serve: their answers are stale."""
    push: list[PodInfo]
    """Ready pods not known to run ``revision``, or known only under another uid."""


def knob_plan(pods: Iterable[PodInfo], pushed: Pushed, revision: int) -> KnobPlan:
    ready = [p for p in pods if p.ready and p.ip]
    forget = set(pushed) - {p.name for p in ready}
    push = [
        p
        for p in ready
        if (known := pushed.get(p.name)) is None
        or known[0] != p.uid
        or known[1].revision != revision
    ]
    return KnobPlan(ready, forget, push)


def pods_on_revision(ready: Iterable[PodInfo], pushed: Pushed, revision: int) -> int:
    return sum(1 for p in ready if (k := pushed.get(p.name)) and k[1].revision == revision)


def pod_knob_states(
    pods: Iterable[PodInfo], pushed: Pushed, wanted: int | None = None
) -> list[status.PodKnobState]:
    """Per serving pod, for the status: the revision it runs, or why not. ``wanted``: the
    revision these pods should run when it is not the engines' (routers)."""
    out = []
    for pod in pods:
        if not (pod.ready and pod.ip):
            continue
        known = pushed.get(pod.name)
        result = known[1] if known is not None else PushResult(None, "not pushed yet")
        out.append(
            status.PodKnobState(pod.name, result.revision, result.message, result.rejected, wanted)
        )
    return out
