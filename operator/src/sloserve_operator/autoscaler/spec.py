"""From the ``LLMService`` spec to the decision's :class:`ScalingPolicy` (one mapping)."""

from __future__ import annotations

from ..api import v1alpha1 as api
from .decision import ScalingPolicy


def policy_from_spec(spec: api.LLMServiceSpec) -> ScalingPolicy:
    """``autoscaling.sloAttainmentTarget`` falls back to ``slo.attainmentTarget``."""
    a = spec.autoscaling
    target = (
        spec.slo.attainment_target if a.slo_attainment_target is None else a.slo_attainment_target
    )
    return ScalingPolicy(
        min_replicas=a.min_replicas,
        max_replicas=a.max_replicas,
        kv_pressure_target=a.kv_pressure_target,
        slo_attainment_target=max(target, 1e-6),
        tolerance=min(a.tolerance, 0.99),  # 1.0 would disable the consolidation check
        scale_up_stabilization_s=a.scale_up_stabilization_seconds,
        scale_down_stabilization_s=a.scale_down_stabilization_seconds,
        fast_path_attainment_drop=a.fast_path_attainment_drop,
        scale_up_max_step=a.scale_up_max_step,
        scale_down_max_step=a.scale_down_max_step,
        metric_max_age_s=max(30.0, 3.0 * a.interval_seconds),
        scale_to_zero_after_s=a.scale_to_zero_after_s,
    )
