"""Kopf glue: one daemon per ``LLMService`` runs the autoscaler every ``intervalSeconds``.

A daemon rather than a timer because the interval comes from each object's spec; kopf keeps
``body`` current as watch events arrive, and ``stopped.wait`` sleeps without a hot loop and
ends promptly when the object is deleted or the operator stops. Importing this module
registers the daemon (``main.py`` imports it).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import kopf
import pydantic
from kubernetes_asyncio import client

from ..api import v1alpha1 as api
from ..render.target import Target
from .decision import Reason
from .kube import KubeEdge, status_patch
from .loop import Autoscaler
from .metrics import AutoscalerMetrics
from .metrics_source import MetricsSource, PodsSource, PrometheusSource
from .spec import policy_from_spec

AUTOSCALER = Autoscaler(AutoscalerMetrics())
"""One per operator process: decision histories and the operator's registry."""

_IDLE_S = 30.0
"""How often a disabled or invalid service is looked at again."""


@kopf.daemon(api.GROUP, api.VERSION, api.PLURAL, cancellation_timeout=10.0)
async def autoscale(
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    previous: Reason | None = None
    last_status: dict[str, Any] | None = None
    async with client.ApiClient() as api_client:
        edge = KubeEdge(api_client)
        pods_source = PodsSource()
        try:
            while not stopped:
                try:
                    target = Target.from_body(body)
                except pydantic.ValidationError as exc:
                    logger.warning("autoscaler: spec does not validate, not scaling: %s", exc)
                    await stopped.wait(_IDLE_S)
                    continue
                auto = target.spec.autoscaling
                if not auto.enabled:
                    await stopped.wait(_IDLE_S)
                    continue
                try:
                    state = await edge.read_state(target)
                    source = _source(target, pods_source)
                    evaluation = await AUTOSCALER.evaluate(
                        policy_from_spec(target.spec), state, source
                    )
                    if source is not pods_source:
                        await source.aclose()
                    now = dt.datetime.now(dt.UTC)
                    patch = status_patch(evaluation, now)
                    if evaluation.scales or patch != last_status:
                        await edge.apply(body, evaluation, previous, now)
                        last_status = patch
                    if evaluation.scales:
                        logger.info("autoscaler: %s", evaluation.decision.message)
                    previous = evaluation.decision.reason
                except client.ApiException as exc:
                    logger.warning("autoscaler: API error %s, retrying next interval", exc.status)
                await stopped.wait(auto.interval_seconds)
        finally:
            await pods_source.aclose()
            meta = body["metadata"]
            AUTOSCALER.forget(meta["namespace"], meta["name"])


def _source(target: Target, pods_source: PodsSource) -> MetricsSource:
    auto = target.spec.autoscaling
    if auto.metrics_source == "prometheus" and auto.prometheus_url:
        return PrometheusSource(
            auto.prometheus_url, target.namespace, target.name, auto.metrics_timeout_seconds
        )
    return pods_source
