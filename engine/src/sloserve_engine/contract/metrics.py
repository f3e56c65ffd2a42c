"""Every ``sloserve_*`` engine metric name, declared once.

The engine (``EngineMetrics``) registers them; the operator's autoscaler, the
benchmarks, the dashboards' tests and the router read them by these names, so
a rename is one edit here and breaks importers at lint time instead of
silently breaking scaling. Counters are named with their ``_total`` sample
suffix, histograms by their base name (samples add ``_bucket``/``_sum``/``_count``).
"""

from __future__ import annotations

from typing import Literal

KV_USAGE = "sloserve_kv_usage_ratio"
"""Gauge: share of usable KV blocks held by requests at the last step."""
KV_RESERVED = "sloserve_kv_reserved_blocks"
"""Gauge: KV blocks the policy holds back from admissions at the last step."""
KV_PRESSURE = "sloserve_kv_pressure_ratio"
"""Gauge: KV demand of running + waiting requests over usable blocks (the scaling signal)."""
SLO_ATTAINMENT = "sloserve_slo_attainment_ratio"
"""Gauge by ``kind`` (:data:`ATTAINMENT_KINDS`): attainment over the sliding window."""
SLO_WINDOW_REQUESTS = "sloserve_slo_window_requests"
"""Gauge: requests finished in the window (the attainment ratios' denominator)."""
PREDICTOR_ERROR = "sloserve_predictor_abs_error_tokens"
"""Histogram: absolute output-length prediction error per finished request (tokens)."""
TTFT = "sloserve_ttft_seconds"
"""Histogram by ``slo_class``: time to first token of finished requests."""
TBT = "sloserve_tbt_seconds"
"""Histogram by ``slo_class``: mean time per output token after the first."""
PREEMPTIONS = "sloserve_preemptions_total"
"""Counter by ``mode`` (swap, recompute): preempted requests."""
QUEUE_LENGTH = "sloserve_queue_length"
"""Gauge by ``queue`` (waiting, running) and ``slo_class`` at the last step."""
CHUNK_TOKENS = "sloserve_chunk_tokens"
"""Gauge: prefill chunk budget of the last step."""
KNOBS_REVISION = "sloserve_knobs_revision"
"""Gauge: revision of the knobs document the scheduler applies."""
REQUESTS_FINISHED = "sloserve_requests_finished_total"
"""Counter by ``slo_class`` and ``attained`` (true, false): finished requests."""
REQUESTS = "sloserve_requests_total"
"""Counter by ``slo_class`` and ``outcome`` (finished, aborted, rejected, error): every request."""
POLICY_ERRORS = "sloserve_policy_errors_total"
"""Counter by ``call``: policy calls that raised (stock vLLM decided instead)."""
ENGINE_INFO = "sloserve_engine_info"
"""Gauge by ``mode`` (:data:`ENGINE_MODES`), always 1: what serves the requests. The operator
reports it as ``status.engineMode``, so a pod whose command was changed outside the spec (the
dev cluster's process kubelet adds ``--simulated``) is visible as such."""

ATTAINMENT_KINDS = ("ttft", "tbt", "both", "strict")
"""Values of the ``kind`` label of :data:`SLO_ATTAINMENT`; ``both`` is what scaling reads."""

EngineMode = Literal["simulated", "vllm"]
ENGINE_MODES: tuple[EngineMode, ...] = ("simulated", "vllm")
"""Values of the ``mode`` label of :data:`ENGINE_INFO`: the simulator, or vLLM on a GPU."""

ENGINE_METRICS = (
    KV_USAGE,
    KV_RESERVED,
    KV_PRESSURE,
    SLO_ATTAINMENT,
    SLO_WINDOW_REQUESTS,
    PREDICTOR_ERROR,
    TTFT,
    TBT,
    PREEMPTIONS,
    QUEUE_LENGTH,
    CHUNK_TOKENS,
    KNOBS_REVISION,
    REQUESTS_FINISHED,
    REQUESTS,
    POLICY_ERRORS,
    ENGINE_INFO,
)
"""All of the above, for tests that check the engine exports exactly these."""
