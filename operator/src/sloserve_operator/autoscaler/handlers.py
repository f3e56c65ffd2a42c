"""Kopf glue: one daemon per ``LLMService`` runs the autoscaler every ``intervalSeconds``.

A daemon rather than a timer because the interval comes from each object's spec; kopf keeps
``body`` current as watch events arrive, and ``stopped.wait`` sleeps without a hot loop and
ends promptly when the object is deleted or the operator stops. Pods and the Deployment come
from the operator controller's watch cache (``memo.runtime.controller``), writes go through its
``Kube``. ``main.py`` imports this module, which registers the daemon.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import kopf
import pydantic

from ..api import v1alpha1 as api
from ..controller import Controller
from ..k8s import ApiError
from ..render.target import Target
from .decision import Reason
from .kube import KubeEdge, service_state, status_due, status_patch
from .loop import Autoscaler
from .metrics import AutoscalerMetrics
from .metrics_source import MetricsSource, PodsSource, PrometheusSource
from .spec import policy_from_spec

AUTOSCALER = Autoscaler(AutoscalerMetrics())
"""One per operator process: decision histories and the operator's registry."""

_IDLE_S = 30.0
"""How often a disabled, invalid or not yet reconciled service is looked at again."""


@kopf.daemon(api.GROUP, api.VERSION, api.PLURAL, cancellation_timeout=10.0)
async def autoscale(
    body: kopf.Body,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    controller: Controller = memo.runtime.running
    edge = KubeEdge(controller.kube)
    pods_source = PodsSource(client=controller.http)  # shared pool; the controller closes it
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    previous: Reason | None = None
    last_status: dict[str, Any] | None = None
    last_write = 0.0
    try:
        while not stopped:
            cached = controller.states.get(key)
            try:
                target = Target.from_body(body)
            except pydantic.ValidationError as exc:
                logger.warning("autoscaler: spec does not validate, not scaling: %s", exc)
                target = None
            if target is None or cached is None or not target.spec.autoscaling.enabled:
                await stopped.wait(_IDLE_S)
                continue
            state = service_state(target, cached.pods.values(), cached.deployment)
            source = _source(target, pods_source)
            try:
                evaluation = await AUTOSCALER.evaluate(policy_from_spec(target.spec), state, source)
            finally:
                if source is not pods_source:
                    await source.aclose()
            now = dt.datetime.now(dt.UTC)
            patch = status_patch(evaluation, now)
            try:
                due = status_due(patch, last_status, time.monotonic() - last_write)
                await edge.apply(body, evaluation, previous, now, write_status=due)
                if due:
                    last_status, last_write = patch, time.monotonic()
                previous = evaluation.decision.reason
                if evaluation.scales:
                    logger.info("autoscaler: %s", evaluation.decision.message)
            except ApiError as exc:
                logger.warning("autoscaler: API error, retrying next interval: %s", exc)
            await stopped.wait(target.spec.autoscaling.interval_seconds)
    finally:
        AUTOSCALER.forget(*key)


def _source(target: Target, pods_source: PodsSource) -> MetricsSource:
    auto = target.spec.autoscaling
    if auto.metrics_source == "prometheus" and auto.prometheus_url:
        return PrometheusSource(
            auto.prometheus_url, target.namespace, target.name, auto.metrics_timeout_seconds
        )
    return pods_source
