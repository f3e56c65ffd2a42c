"""``sloserve operator``: run the kopf operator in this process.

    sloserve operator --standalone -A                 # one replica, all namespaces (tests, dev)
    sloserve operator --peering sloserve -A      # HA: replicas elect one active (kopf peering)
    sloserve operator --standalone -n team-a -n team-b

:func:`serve` is the embeddable entry point: tests run it in a thread with a stop flag.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf
from prometheus_client import start_http_server

from . import handlers
from .autoscaler import handlers as autoscaler_handlers
from .controller import ControllerConfig
from .handlers import CHILD_LABELS, CHILD_RESOURCES, POD_SELECTOR
from .metrics import OperatorMetrics, default_metrics
from .optional_apis import quiet_optional_apis
from .runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OperatorOptions:
    standalone: bool = True
    peering: str | None = None
    namespaces: Sequence[str] = ()
    """Empty: all namespaces."""
    priority: int = 0
    """kopf peering priority: the highest active replica serves, equal ones all pause."""
    liveness_port: int | None = None
    host: str = "0.0.0.0"
    """Address the liveness (and metrics) endpoints bind: every interface of the pod by
    default; a local process that plays a pod (the dev cluster's process kubelet) binds its
    pod IP instead, so replicas on one machine do not collide."""
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    autoscaler: bool = True


def build_registry(options: OperatorOptions, runtime: Runtime) -> kopf.OperatorRegistry:
    """The controller's handlers, and the autoscaler's unless disabled: one registry per
    ``serve``, so nothing depends on which modules happened to be imported."""
    registry = kopf.OperatorRegistry()
    handlers.register(registry, runtime)
    if options.autoscaler:
        autoscaler_handlers.register(registry, runtime)
    return registry


class NoDiffBaseStorage(kopf.DiffBaseStorage):
    """Skips kopf's per-event "essence": a deep copy of every watched object, built for change
    handlers (``on.create``/``on.update``). With event handlers only it was half the
    operator's CPU at scale (profiled with 200 services)."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def _has_change_handlers(registry: kopf.OperatorRegistry) -> bool:
    """Whether change handlers are registered (they need the real essence)."""
    changing = getattr(registry, "_changing", None)
    handlers = getattr(changing, "get_all_handlers", None)
    return handlers is None or bool(list(handlers()))


def settings_for(
    options: OperatorOptions, registry: kopf.OperatorRegistry
) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # the controller posts its own, meaningful Events
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="sloserve.io")
    settings.persistence.diffbase_storage = (
        kopf.AnnotationsDiffBaseStorage(prefix="sloserve.io", key="last-handled-configuration")
        if _has_change_handlers(registry)
        else NoDiffBaseStorage()
    )
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    selector = ",".join(f"{k}={v}" for k, v in CHILD_LABELS.items())
    for group, version, plural in CHILD_RESOURCES:
        settings.watching.label_selectors[(group, version, plural)] = selector
    settings.watching.label_selectors[("", "v1", "pods")] = POD_SELECTOR
    if options.peering:
        settings.peering.name = options.peering
    return settings


async def serve(
    options: OperatorOptions,
    metrics: OperatorMetrics,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    quiet_optional_apis()
    runtime = Runtime(metrics, options.controller)
    registry = build_registry(options, runtime)
    liveness = (
        f"http://{options.host}:{options.liveness_port}/healthz" if options.liveness_port else None
    )
    await kopf.operator(
        registry=registry,
        settings=settings_for(options, registry),
        standalone=options.standalone or not options.peering,
        peering_name=options.peering,
        priority=options.priority,
        clusterwide=not options.namespaces,
        namespaces=list(options.namespaces),
        liveness_endpoint=liveness,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    ha = parser.add_mutually_exclusive_group()
    ha.add_argument("--standalone", action="store_true", help="no peering (single replica)")
    ha.add_argument("--peering", metavar="NAME", help="kopf peering object for HA (one active)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (default)"
    )
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch only NS (repeatable)"
    )
    parser.add_argument(
        "--priority",
        type=int,
        help="kopf peering priority (default with --peering: minus the start time in ms, so the "
        "oldest replica stays active and the others wait)",
    )
    parser.add_argument("--metrics-port", type=int, default=8080, help="0 disables")
    parser.add_argument("--liveness-port", type=int, default=8081, help="0 disables")
    parser.add_argument(
        "--host",
        default="0.0.0.0",
        help="address the metrics and liveness endpoints bind (default: every interface)",
    )
    parser.add_argument("--workers", type=int, default=16, help="parallel reconciles")
    parser.add_argument(
        "--knob-resync-seconds", type=float, default=300.0, help="re-push knobs this often"
    )
    parser.add_argument(
        "--full-resync-seconds", type=float, default=1800.0, help="re-apply children this often"
    )
    parser.add_argument("--no-autoscaler", action="store_true", help="do not load the autoscaler")
    parser.add_argument("-v", "--verbose", action="store_true")


def _priority(args: argparse.Namespace) -> int:
    """Distinct priorities per replica: kopf freezes every peer when priorities are equal."""
    if args.priority is not None:
        return int(args.priority)
    return -(time.time_ns() // 1_000_000) if args.peering else 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # kopf logs every handled watch event at INFO: thousands per minute
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    metrics = default_metrics()
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.host, registry=metrics.registry)
    options = OperatorOptions(
        standalone=args.standalone or not args.peering,
        peering=args.peering,
        priority=_priority(args),
        namespaces=tuple(args.namespace),
        liveness_port=args.liveness_port or None,
        host=args.host,
        controller=ControllerConfig(
            workers=args.workers,
            knob_resync_s=args.knob_resync_seconds,
            full_resync_s=args.full_resync_seconds,
        ),
        autoscaler=not args.no_autoscaler,
    )
    asyncio.run(serve(options, metrics))
    return 0
