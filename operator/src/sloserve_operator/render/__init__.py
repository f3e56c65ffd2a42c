"""Pure rendering: an ``LLMService`` in, the Kubernetes objects it should own out.

No I/O here: every function maps typed input to plain manifests, so golden-file tests pin
the output and the reconciler only decides *whether* to apply, never *what*.
"""

from __future__ import annotations

from typing import Any

from . import configmap, deployment, monitor, pdb, router, service
from .target import Target

Manifest = dict[str, Any]


def children(target: Target, *, with_service_monitor: bool) -> list[Manifest]:
    """Every object applied on each reconcile (the admin Secret is created once, elsewhere).

    The router Deployment and its budget are rendered even at ``router.replicas: 0`` (then with
    no pods), so turning the tier off scales it away instead of leaving it running.
    """
    objs = [
        configmap.render(target),
        deployment.render(target),
        service.render_engines(target),
        service.render(target),
        pdb.render(target),
        router.render(target),
        pdb.render_router(target),
    ]
    if with_service_monitor:
        objs.append(monitor.render(target))
    return objs
