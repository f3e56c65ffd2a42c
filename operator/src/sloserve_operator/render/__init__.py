"""Pure rendering: an ``LLMService`` in, the Kubernetes objects it should own out.

No I/O here: every function maps typed input to plain manifests, so golden-file tests pin
the output and the reconciler only decides *whether* to apply, never *what*.
"""

from __future__ import annotations

from typing import Any

from . import configmap, deployment, monitor, pdb, service
from .target import Target

Manifest = dict[str, Any]


def children(target: Target, *, with_service_monitor: bool) -> list[Manifest]:
    """Every object applied on each reconcile (the admin Secret is created once, elsewhere)."""
    objs = [
        configmap.render(target),
        deployment.render(target),
        service.render(target),
        pdb.render(target),
    ]
    if with_service_monitor:
        objs.append(monitor.render(target))
    return objs
