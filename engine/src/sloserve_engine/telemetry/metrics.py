"""Every ``sloserve_*`` engine metric, named in :mod:`..contract.metrics` (docs/engine.md).

Both executors report through :class:`EngineMetrics` with the same two calls,
:meth:`EngineMetrics.record_step` (once per engine step, from the policy's
own views) and :meth:`EngineMetrics.record_finish` (once per finished
request), so a number on a dashboard means the same thing whether it came
from the simulated engine or from vLLM's engine core.

Process model: the simulated engine creates its metrics in the serving
process. In the real engine they are created in vLLM's engine-core process
with ``PROMETHEUS_MULTIPROC_DIR`` set; prometheus_client then writes values to
files in that directory and vLLM's ``/metrics`` aggregates them. Gauges
therefore declare ``multiprocess_mode="mostrecent"`` (the last written value
wins, which is the meaning of "last step's value"); the mode is ignored in
single-process use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from ..contract import metrics as names
from ..contract.attainment import MISSED, STALL_BOUND_MS_DEFAULT, request_attainment
from ..contract.knobs import SLODefaults
from ..contract.slo import OTHER_SLO_CLASS, SLO, slo_class_label
from ..policy.views import EngineSnapshot, PreemptionMode, RequestView, StepPlan
from .attainment import (
    Outcome,
    SlidingWindowAttainment,
    counts_as_miss,
    overdue_count,
)

QUEUES = ("waiting", "running")
POLICY_CALLS = (
    "plan",
    "can_admit",
    "preemption_mode",
    "on_arrival",
    "on_finish",
    "start_deadline",
)
"""Policy methods an executor guards; one ``sloserve_policy_errors_total`` series each."""
LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
PREDICTOR_ERROR_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
"""Tokens; spans exact predictions up to the model-wide cap the ``vllm`` policy predicts."""

_MOSTRECENT: Final[Literal["mostrecent"]] = "mostrecent"


@dataclass(frozen=True, slots=True)
class FinishedRequest:
    """What the metrics need about a request that finished (all times on the executor's clock)."""

    slo: SLO
    arrival_time: float
    first_token_time: float
    finish_time: float
    output_tokens: int
    predicted_output: int
    max_gap_s: float
    """Longest gap between two of its tokens (0 for a one-token answer)."""
    stall_bound_s: float = STALL_BOUND_MS_DEFAULT / 1e3
    """The engine's ``stallBoundMs`` knob when it finished (strict attainment)."""


def request_kv_demand_blocks(request: RequestView, block_size: int) -> int:
    """Blocks a request needs to hold its current context (prompt + output so far).

    A running request may already hold more (lookahead, reservations), so the
    larger of the two counts: demand is what must be resident to make progress.
    """
    needed = -(-request.total_tokens // block_size)
    return max(needed, request.blocks_held)


def kv_pressure(snapshot: EngineSnapshot) -> float:
    """KV demand of running + waiting requests over KV capacity (> 1: not everything fits)."""
    if snapshot.total_blocks <= 0:
        return 0.0
    demand = sum(
        request_kv_demand_blocks(r, snapshot.block_size)
        for r in (*snapshot.running, *snapshot.waiting)
    )
    return demand / snapshot.total_blocks


def chunk_tokens(plan: StepPlan) -> float:
    """The step's prefill chunk budget: the policy's note, else its cap, else the token budget."""
    notes = dict(plan.notes)
    if "chunk_tokens" in notes:
        return notes["chunk_tokens"]
    return float(plan.prefill_chunk_cap or plan.token_budget)


def queue_lengths(snapshot: EngineSnapshot, declared: frozenset[str]) -> dict[tuple[str, str], int]:
    """Request counts by (queue, SLO class label)."""
    counts: dict[tuple[str, str], int] = {}
    for queue, requests in (("waiting", snapshot.waiting), ("running", snapshot.running)):
        for r in requests:
            key = (queue, slo_class_label(r.slo.slo_class, declared))
            counts[key] = counts.get(key, 0) + 1
    return counts


def first_token_deadlines(snapshot: EngineSnapshot) -> list[float]:
    """Arrival + TTFT target of every open request still waiting for its first token."""
    return [
        r.arrival_time + r.slo.ttft_s
        for r in (*snapshot.waiting, *snapshot.running)
        if r.first_token_time is None
    ]


class EngineMetrics:
    """All ``sloserve_*`` metrics of one engine, plus the sliding attainment window.

    ``slo_classes`` are the declared SLO classes (the knobs' ``sloDefaults``); any other
    class is reported as ``other``, so every ``slo_class`` label has at most
    ``MAX_SLO_CLASSES`` + 2 values (declared, the default class, ``other``).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = REGISTRY,
        window_s: float = 60.0,
        slo_classes: Iterable[str] = SLODefaults().declared_classes(),
        *,
        mode: names.EngineMode,
    ) -> None:
        """``mode`` has no default: an engine that is not asked cannot claim to be real."""
        self.window = SlidingWindowAttainment(window_s)
        self._deadlines: list[float] = []
        self.kv_usage = Gauge(
            names.KV_USAGE,
            "Share of usable KV-cache blocks held by requests at the last step (0-1).",
            registry=registry,
            multiprocess_mode=_MOSTRECENT,
        )
        self.kv_reserved = Gauge(
            names.KV_RESERVED,
            "KV blocks the policy holds back from admissions (global reserve plus "
            "predicted-output reservations) at the last step.",
            registry=registry,
            multiprocess_mode=_MOSTRECENT,
        )
        self.kv_pressure = Gauge(
            names.KV_PRESSURE,
            "KV blocks needed by the context of all running and waiting requests over usable "
            "KV blocks at the last step; above 1 not everything fits.",
            registry=registry,
            multiprocess_mode=_MOSTRECENT,
        )
        self.attainment = Gauge(
            names.SLO_ATTAINMENT,
            f"Share of requests ended in the last {window_s:g} s that met their SLO: "
            "kind=ttft (time to first token), tbt (mean time per output token), both; "
            "strict: both and no gap between two tokens above the stall bound (knob "
            "stallBoundMs). Aborted and failed requests, and open ones past their TTFT "
            "target, count as misses. 1 when there are none.",
            ["kind"],
            registry=registry,
            multiprocess_mode=_MOSTRECENT,
        )
        self.window_requests = Gauge(
            names.SLO_WINDOW_REQUESTS,
            f"Requests finished, aborted or failed in the last {window_s:g} s plus open ones "
            "past their TTFT target (the attainment ratios' denominator).",
            registry=registry,
            multiprocess_mode=_MOSTRECENT,
        )
        self.predictor_error = Histogram(
            names.PREDICTOR_ERROR,
            "Absolute error of the output-length prediction made at arrival, per finished "
            "request (tokens).",
            buckets=PREDICTOR_ERROR_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            names.TTFT,
            "Time to first token of finished requests by SLO class (seconds).",
            ["slo_class"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.tbt = Histogram(
            names.TBT,
            "Mean time per output token after the first, of finished requests with more than "
            "one output token, by SLO class (seconds).",
            ["slo_class"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.preemptions = Counter(
            names.PREEMPTIONS,
            "Preempted requests by how their KV is restored (swap: host copy, recompute).",
            ["mode"],
            registry=registry,
        )
        self.queue_length = Gauge(
            names.QUEUE_LENGTH,
            "Requests per queue (waiting, running) and SLO class at the last step.",
            ["queue", "slo_class"],
            registry=registry,
            multiprocess_mode=_MOSTRECENT,
        )
        self.chunk = Gauge(
            names.CHUNK_TOKENS,
            "Prefill chunk budget of the last step (tokens).",
            registry=registry,
            multiprocess_mode=_MOSTRECENT,
        )
        self.knobs_revision = Gauge(
            names.KNOBS_REVISION,
            "Revision (content hash) of the knobs document the scheduler applies.",
            registry=registry,
            multiprocess_mode=_MOSTRECENT,
        )
        self.finished = Counter(
            names.REQUESTS_FINISHED,
            "Finished requests by SLO class and whether they met both TTFT and TBT targets.",
            ["slo_class", "attained"],
            registry=registry,
        )
        self.requests = Counter(
            names.REQUESTS,
            "Requests by SLO class and outcome: finished, aborted (client went away), "
            "rejected (4xx before queueing), error (the engine failed it).",
            ["slo_class", "outcome"],
            registry=registry,
        )
        self.policy_errors = Counter(
            names.POLICY_ERRORS,
            "Policy calls that raised, by method (plan, can_admit, preemption_mode, on_arrival, "
            "on_finish); the scheduler used stock vLLM's decision for that call instead.",
            ["call"],
            registry=registry,
        )
        self.info = Gauge(
            names.ENGINE_INFO,
            "Always 1, labelled with what serves the requests: mode=simulated (the simulator, "
            "no GPU) or mode=vllm (vLLM's engine core).",
            ["mode"],
            registry=registry,
            multiprocess_mode=_MOSTRECENT,
        )
        self.info.labels(mode=mode).set(1)
        for preemption in PreemptionMode:
            self.preemptions.labels(mode=preemption.value)
        for call in POLICY_CALLS:
            self.policy_errors.labels(call=call)
        self._declared: frozenset[str] = frozenset()
        self._classes: set[str] = set()
        self.set_slo_classes(slo_classes)
        self._publish_window(0.0)

    def record_step(
        self,
        snapshot: EngineSnapshot,
        plan: StepPlan | None,
        preempted: Mapping[PreemptionMode, int],
        now: float,
    ) -> None:
        """Facts of one step, from the snapshot the plan was made from.

        ``plan`` is None for an idle step (nothing planned): queues and KV are
        reported, chunk and reserve keep the last plan's values.
        """
        total = snapshot.total_blocks
        self.kv_usage.set(snapshot.used_blocks / total if total > 0 else 0.0)
        self.kv_pressure.set(kv_pressure(snapshot))
        if plan is not None:
            self.kv_reserved.set(dict(plan.notes).get("reserved_blocks", 0.0))
            self.chunk.set(chunk_tokens(plan))
        for mode, count in preempted.items():
            if count:
                self.preemptions.labels(mode=PreemptionMode(mode).value).inc(count)
        counts = queue_lengths(snapshot, self._declared)
        self._deadlines = first_token_deadlines(snapshot)
        for slo_class in self._classes:
            for queue in QUEUES:
                self.queue_length.labels(queue=queue, slo_class=slo_class).set(
                    counts.get((queue, slo_class), 0)
                )
        self._publish_window(now)

    def record_finish(self, request: FinishedRequest, now: float) -> None:
        """One finished request: attainment window, finished counter, predictor error."""
        att = request_attainment(
            request.slo,
            request.arrival_time,
            request.first_token_time,
            request.finish_time,
            request.output_tokens,
            request.max_gap_s,
            request.stall_bound_s,
        )
        slo_class = self.label(request.slo.slo_class)
        self.window.add(request.finish_time, att)
        self.finished.labels(slo_class=slo_class, attained="true" if att.both else "false").inc()
        self.requests.labels(slo_class=slo_class, outcome=Outcome.FINISHED.value).inc()
        self.predictor_error.observe(abs(request.predicted_output - request.output_tokens))
        self.ttft.labels(slo_class=slo_class).observe(
            request.first_token_time - request.arrival_time
        )
        if request.output_tokens > 1:
            mean_tbt = (request.finish_time - request.first_token_time) / (
                request.output_tokens - 1
            )
            self.tbt.labels(slo_class=slo_class).observe(mean_tbt)
        self._publish_window(now)

    def record_ended(self, slo_class: str, outcome: Outcome, now: float) -> None:
        """A request that did not finish (aborted, rejected, error); misses enter the window."""
        if outcome is Outcome.FINISHED:
            raise ValueError("finished requests go through record_finish")
        self.requests.labels(slo_class=self.label(slo_class), outcome=outcome.value).inc()
        if counts_as_miss(outcome):
            self.window.add(now, MISSED)
            self._publish_window(now)

    def label(self, slo_class: str) -> str:
        """The ``slo_class`` label value of a class: itself if declared, else ``other``."""
        return slo_class_label(slo_class, self._declared)

    def set_slo_classes(self, slo_classes: Iterable[str]) -> None:
        """Declare the classes with their own series (a knobs change); drop the others'."""
        self._declared = frozenset(slo_classes)
        for gone in self._classes - self._declared - {OTHER_SLO_CLASS}:
            self._drop_class(gone)
        for slo_class in (*self._declared, OTHER_SLO_CLASS):
            self._ensure_class(slo_class)

    def refresh(self, now: float) -> None:
        """Age the attainment window while no step runs (an idle engine)."""
        self._publish_window(now)

    def record_policy_error(self, call: str) -> None:
        """A policy method (one of ``POLICY_CALLS``) raised; the executor fell back."""
        if call not in POLICY_CALLS:
            raise ValueError(f"unknown policy call {call!r}; expected one of {POLICY_CALLS}")
        self.policy_errors.labels(call=call).inc()

    def set_knobs_revision(self, revision: int) -> None:
        """Call when a knobs document takes effect in the scheduler."""
        self.knobs_revision.set(revision)

    def _ensure_class(self, slo_class: str) -> None:
        if slo_class in self._classes:
            return
        self._classes.add(slo_class)
        for queue in QUEUES:
            self.queue_length.labels(queue=queue, slo_class=slo_class).set(0)
        for attained in ("true", "false"):
            self.finished.labels(slo_class=slo_class, attained=attained)
        for outcome in Outcome:
            self.requests.labels(slo_class=slo_class, outcome=outcome.value)

    def _drop_class(self, slo_class: str) -> None:
        self._classes.discard(slo_class)
        for queue in QUEUES:
            self.queue_length.remove(queue, slo_class)
        for attained in ("true", "false"):
            self.finished.remove(slo_class, attained)
        for outcome in Outcome:
            self.requests.remove(slo_class, outcome.value)
        for histogram in (self.ttft, self.tbt):
            with contextlib.suppress(KeyError):  # only classes that finished a request have one
                histogram.remove(slo_class)

    def _publish_window(self, now: float) -> None:
        ratios = self.window.ratios(now, overdue_count(self._deadlines, now))
        self.attainment.labels(kind="ttft").set(ratios.ttft)
        self.attainment.labels(kind="tbt").set(ratios.tbt)
        self.attainment.labels(kind="both").set(ratios.both)
        self.attainment.labels(kind="strict").set(ratios.strict)
        self.window_requests.set(ratios.requests)
