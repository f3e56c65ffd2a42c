"""sloserve's scheduler inside vLLM 0.26.0: policy plans applied to vLLM's own ``schedule()``.

``vllm serve ... --scheduler-cls sloserve_engine.vllm.scheduler.SLOScheduler``

Each step the mixin builds the policy's views from vLLM's ``Request`` objects
and KV manager, asks :meth:`Policy.plan`, then runs the *unmodified*
``Scheduler.schedule()`` with the plan expressed through vLLM's own state
(docs/vllm-adapter.md maps every decision):

* running order: ``self.running`` is reordered, so vLLM's FCFS branch
  (``self.running.pop()``) preempts from the end of the policy's order;
* admission order and holdback: the waiting queues are rebuilt to hold only
  the admitted requests, in the policy's order, and restored afterwards;
* token budget and chunk cap: ``self.max_num_scheduled_tokens`` and
  ``scheduler_config.long_prefill_token_threshold`` for the step;
* ``can_admit``: a gate around ``kv_cache_manager.allocate_slots`` in vLLM's
  waiting loop, for requests being admitted (``None`` = "does not fit", vLLM
  stops admitting);
* ``preemption_mode``: asked in ``_preempt_request``; recompute victims are
  hidden from the KV offload connector, swap victims reload through it.

Nothing is copied from vLLM's scheduling loop, so its bookkeeping (blocks,
placeholders, connector state, output construction) stays vLLM's own.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from itertools import filterfalse
from operator import attrgetter, is_
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.output import SchedulerOutput
from vllm.v1.core.sched.request_queue import FCFSRequestQueue, RequestQueue, SchedulingPolicy
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.engine.core import EngineCore
from vllm.v1.outputs import ModelRunnerOutput
from vllm.v1.request import Request, RequestStatus

from ..contract.knobs import Knobs, KnobsState, parse_knobs, write_atomically, write_knobs_state
from ..contract.pod import STATE_PATH_ENV, engine_id
from ..contract.slo import InvalidSLOError, parse_slo, slo_class_label
from ..policy import apply_knobs, make_policy
from ..policy.base import Policy
from ..policy.costmodel import StepCostModel, cost_model_for
from ..policy.guard import PolicyErrorLog
from ..policy.views import (
    ArrivalInfo,
    EngineSnapshot,
    FinishedInfo,
    Prediction,
    PreemptionMode,
    RequestView,
    StepPlan,
    effective_chunk_cap,
    make_request_view,
)
from ..policy.vllm_fcfs import VllmFcfsPolicy
from ..router.drain import FreedMeter
from ..router.snapshot import snapshot_from_view
from ..telemetry.attainment import Outcome
from ..telemetry.metrics import EngineMetrics, FinishedRequest
from .knobsource import KnobsFile, resolve_knobs_config
from .requests import RequestMeta
from .stats import AdapterStats
from .steplog import StepLogMixin

log = logging.getLogger(__name__)

_ADMISSION_STATUSES = frozenset({RequestStatus.WAITING, RequestStatus.PREEMPTED})
_BLOCKED_STATUSES = frozenset(s for s in RequestStatus if Scheduler._is_blocked_waiting_status(s))
"""vLLM's blocked waiting states (async KV load, grammar, streaming input), as a set."""
_request_id = attrgetter("request_id")
_status = attrgetter("status")
_meta_view = attrgetter("view")
_LEARNABLE_FINISHES = frozenset(
    {RequestStatus.FINISHED_STOPPED, RequestStatus.FINISHED_LENGTH_CAPPED}
)
_OUTCOMES = {
    RequestStatus.FINISHED_ABORTED: Outcome.ABORTED,  # the client went away (or was cut off)
    RequestStatus.FINISHED_IGNORED: Outcome.REJECTED,  # vLLM refused to schedule it
    RequestStatus.FINISHED_ERROR: Outcome.ERROR,
}
"""How a request ended, by vLLM's final status; any other final status is ``finished``."""

STOCK_POLICY = VllmFcfsPolicy()
"""Stock vLLM's decisions (the identity plan): the fallback when the policy raises."""

METRICS_INTERVAL_S = 0.1
"""Default least engine time between two per-step metric reports (``record_step``)."""

if TYPE_CHECKING:
    _Base = Scheduler
else:
    _Base = object


@cache
def process_metrics() -> EngineMetrics:
    """One metrics set per process on the default registry (multiprocess-aware under vLLM)."""
    return EngineMetrics(mode="vllm")


def _note_token(meta: RequestMeta, produced: int, now: float) -> None:
    """New output tokens of one request landed at ``now``: extend its longest gap."""
    if meta.last_token_time is not None:
        meta.max_gap_s = max(meta.max_gap_s, now - meta.last_token_time)
    meta.last_token_time = now
    meta.tokens_seen = produced


class SLOSchedulerMixin(_Base):
    """The adapter; combine with vLLM's ``AsyncScheduler`` (production) or ``Scheduler`` (sync)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.policy != SchedulingPolicy.FCFS:
            raise ValueError(
                "sloserve's scheduler needs --scheduling-policy fcfs: victim order is applied "
                "through vLLM's FCFS preemption branch (the policy itself decides priorities)"
            )
        additional = self.vllm_config.additional_config
        config = resolve_knobs_config(
            additional if isinstance(additional, Mapping) else None, os.environ
        )
        self.sloserve_clock: Callable[[], float] = time.time
        """Clock of ``EngineSnapshot.now``; must match ``Request.arrival_time`` (wall clock)."""
        self.sloserve_stats = AdapterStats()
        self.sloserve_metrics = process_metrics()
        self.sloserve_metrics_interval_s = METRICS_INTERVAL_S
        """Least time between two reports of the per-step gauges (queues, KV, chunk).

        Reporting costs about 0.3 ms at 256 requests (two passes over every view
        plus the label lookups), as much as the rest of the adapter, while
        Prometheus scrapes every few seconds. Steps with preemptions always
        report, so ``sloserve_preemptions_total`` stays exact; 0 reports every step.
        """
        self._sl_metrics_at = float("-inf")
        self._sl_error_log = PolicyErrorLog(log)
        self._sl_meta: dict[str, RequestMeta] = {}
        self._sl_recompute_ids: set[str] = set()
        self._sl_swapped_ids: set[str] = set()
        """Requests whose view carries ``swapped_tokens`` until they run again."""
        self._sl_step_preempted: dict[PreemptionMode, int] = {}
        self._sl_now = 0.0
        self._sl_admit_views: list[RequestView] = []
        self._sl_queued: list[Request] = []
        self._sl_queued_split = 0
        self._sl_queued_metas: list[RequestMeta] = []
        self._sl_queued_views: tuple[RequestView, ...] = ()
        """The last snapshot's queued requests, ``len(skipped_waiting)``, metas and views."""
        self._sl_base_budget: int = self.max_num_scheduled_tokens
        self._sl_base_threshold: int = self.scheduler_config.long_prefill_token_threshold
        self._sl_offload_prompt_only = self._offload_prompt_only()
        self._sl_req_blocks: Mapping[str, list[Any]] = (
            self.kv_cache_manager.coordinator.single_type_managers[0].req_to_blocks
        )
        """KV blocks per request id of the first KV group (vLLM never rebinds this dict)."""
        self._sl_knobs_file = KnobsFile(config.knobs_file) if config.knobs_file else None
        self._sl_status_file = config.status_file
        self._sl_knobs = config.initial
        self._sl_cost_model: StepCostModel | None = (
            cost_model_for(config.profile) if config.profile else None
        )
        self._sl_policy: Policy = make_policy(
            config.initial.policy, config.initial, self._sl_cost_model
        )
        state_path = os.environ.get(STATE_PATH_ENV)
        self._sl_state_path = Path(state_path) if state_path else None
        """Where the router-facing snapshot goes (the server's ``GET /sloserve/state``)."""
        self._sl_freed = FreedMeter()
        """KV this engine actually freed, published in the snapshot (``kvFreedTokensPerS``)."""
        self._install_gates()
        if not self._poll_knobs_file():
            self._published(self._sl_knobs)

    # ---------------------------------------------------------------- knobs

    @property
    def sloserve_policy(self) -> Policy:
        return self._sl_policy

    @property
    def sloserve_knobs(self) -> Knobs:
        return self._sl_knobs

    def sloserve_knobs_state(self) -> dict[str, Any]:
        """The applied ``KnobsState`` as wire JSON (what the utility RPC returns)."""
        return KnobsState.of(self._sl_knobs).to_json()

    def sloserve_set_knobs(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and apply a knob document now (between steps); returns the new state."""
        self.apply_knobs(parse_knobs(document, "knobs RPC"))
        return self.sloserve_knobs_state()

    def apply_knobs(self, knobs: Knobs) -> None:
        """Make ``knobs`` the knobs of the next step; a new policy name swaps the policy."""
        policy = apply_knobs(self._sl_policy, knobs, self._sl_cost_model)
        if policy is not self._sl_policy:
            self._switch_policy(policy)
        self._sl_knobs = knobs
        self._published(knobs)

    def use_metrics(self, metrics: EngineMetrics) -> None:
        """Report to ``metrics`` from now on (tests and embedders with their own registry)."""
        self.sloserve_metrics = metrics
        metrics.set_slo_classes(self._sl_knobs.slo_defaults.declared_classes())
        metrics.set_knobs_revision(self._sl_knobs.revision())

    def set_policy(self, policy: Policy) -> None:
        """Run ``policy`` from the next step on (embedders, tests); live requests re-announced."""
        self._switch_policy(policy)

    def _switch_policy(self, policy: Policy) -> None:
        for request in sorted(self.requests.values(), key=lambda r: r.arrival_time):
            meta = self._sl_meta.get(request.request_id)
            if meta is None:
                continue
            prediction = self._predict(policy, self._arrival_info(request, meta))
            meta.predicted_output = prediction.predicted_output
            meta.output_bound = prediction.output_bound
            meta.touch()
        self._sl_policy = policy

    def _published(self, knobs: Knobs) -> None:
        revision = knobs.revision()
        self.sloserve_stats.knobs_revision = revision
        self.sloserve_metrics.set_slo_classes(knobs.slo_defaults.declared_classes())
        self.sloserve_metrics.set_knobs_revision(revision)
        if self._sl_status_file is not None:
            try:
                write_knobs_state(self._sl_status_file, knobs)
            except OSError as exc:
                log.error("sloserve: cannot write knobs status %s: %s", self._sl_status_file, exc)

    def _poll_knobs_file(self) -> bool:
        if self._sl_knobs_file is None:
            return False
        errors = self._sl_knobs_file.errors
        knobs = self._sl_knobs_file.poll()
        self.sloserve_stats.knobs_errors += self._sl_knobs_file.errors - errors
        if knobs is None:
            return False
        try:
            self.apply_knobs(knobs)
        except (ValueError, NotImplementedError) as exc:
            self.sloserve_stats.knobs_errors += 1
            log.error("sloserve: knobs file rejected: %s", exc)
            return False
        return True

    # ---------------------------------------------------------------- policy failures

    def _policy_failed(self, call: str, exc: Exception) -> None:
        """Count and (rate-limited) log a policy error; the caller uses stock vLLM's decision."""
        self.sloserve_stats.policy_errors += 1
        self.sloserve_metrics.record_policy_error(call)
        self._sl_error_log.report(call, exc, time.monotonic())

    def _predict(self, policy: Policy, info: ArrivalInfo) -> Prediction:
        try:
            return policy.on_arrival(info)
        except Exception as exc:
            self._policy_failed("on_arrival", exc)
            return STOCK_POLICY.on_arrival(info)

    # ---------------------------------------------------------------- views

    def _blocks_held(self, request_id: str) -> int:
        return len(self._sl_req_blocks.get(request_id, ()))

    def _arrival_info(self, request: Request, meta: RequestMeta) -> ArrivalInfo:
        return ArrivalInfo(
            request_id=request.request_id,
            arrival_time=request.arrival_time,
            prompt_tokens=request.num_prompt_tokens,
            slo=meta.slo,
            max_output_tokens=meta.max_output_tokens,
        )

    def _view(self, request: Request) -> RequestView:
        return self._views((request,))[0]

    def _views(self, requests: Iterable[Request]) -> list[RequestView]:
        """The requests' views; each is rebuilt only when one of its counters moved.

        This runs for every live request on every step, so it reads each counter
        once and compares it with the cached view's field (no key tuples).
        """
        meta_of = self._sl_meta
        blocks_of = self._sl_req_blocks
        views = []
        for request in requests:
            rid = request.request_id
            meta = meta_of[rid]
            blocks = blocks_of.get(rid)
            held = len(blocks) if blocks else 0
            computed = request.num_computed_tokens
            output = request.num_output_tokens
            preemptions = request.num_preemptions
            view = meta.view
            if (
                view is None
                or view.computed_tokens != computed
                or view.output_tokens != output
                or view.blocks_held != held
                or view.num_preemptions != preemptions
            ):
                view = meta.view = make_request_view(
                    rid,
                    request.arrival_time,
                    request.num_prompt_tokens,
                    output,
                    computed,
                    held,
                    meta.slo,
                    meta.predicted_output,
                    meta.output_bound,
                    meta.max_output_tokens,
                    meta.first_token_time,
                    preemptions,
                    meta.swapped_tokens,
                )
            views.append(view)
        return views

    def _waiting_views(self) -> tuple[RequestView, ...]:
        """Views of the queued requests in the order vLLM's FCFS loop visits them (skipped first).

        Checking every cached view costs about 0.3 µs per queued request, so the
        views of the last snapshot are reused, in C-level passes, for the
        requests still queued in the same order at the front: all of them while
        the queues are unchanged, or those behind admissions from the head of
        ``waiting``. Only the new arrivals behind them get their views checked.
        """
        skipped = self.skipped_waiting
        queued = [*skipped, *self.waiting]
        start, kept = self._reusable_waiting(queued, len(skipped))
        cached = self._sl_queued_views
        if start == 0 and kept == len(queued) == len(cached):
            return cached
        end = start + kept
        views = cached[start:end] + tuple(self._views(queued[kept:]))
        new_metas = map(self._sl_meta.__getitem__, map(_request_id, queued[kept:]))
        self._sl_queued_metas = [*self._sl_queued_metas[start:end], *new_metas]
        self._sl_queued = queued
        self._sl_queued_split = len(skipped)
        self._sl_queued_views = views
        return views

    def _reusable_waiting(self, queued: list[Request], split: int) -> tuple[int, int]:
        """``(start, n)``: ``queued[:n]`` is the last snapshot's ``[start:start + n]``, unchanged.

        vLLM moves a queued request's counters (computed and output tokens,
        blocks, preemptions) only when it enters or leaves the queues, and a
        touched meta has dropped its cached view; so a request queued at both
        snapshots whose meta still holds the view it had then has that view.
        KV connector loads change blocks and computed tokens of a request that
        stays queued: with a connector nothing is reused.
        """
        cached = self._sl_queued
        if self.connector is not None or not queued or split != self._sl_queued_split:
            return 0, 0
        start = 0
        if split == 0 and cached and queued[0] is not cached[0]:
            try:
                start = cached.index(queued[0])  # admissions popped the head of ``waiting``
            except ValueError:
                return 0, 0
        end = start + min(len(cached) - start, len(queued))
        metas = map(_meta_view, self._sl_queued_metas[start:end])
        if queued[: end - start] != cached[start:end] or not all(
            map(is_, metas, self._sl_queued_views[start:end])
        ):
            return 0, 0
        return start, end - start

    def _snapshot(self, now: float) -> EngineSnapshot:
        pool = self.kv_cache_manager.block_pool
        return EngineSnapshot(
            now=now,
            block_size=self.block_size,
            total_blocks=pool.num_gpu_blocks - 1,
            free_blocks=pool.get_num_free_blocks(),
            max_num_batched_tokens=self._sl_base_budget,
            max_num_seqs=self.max_num_running_reqs,
            running=tuple(self._views(self.running)),
            waiting=self._waiting_views(),
        )

    # ---------------------------------------------------------------- step

    def schedule(self, throttle_prefills: bool = False) -> SchedulerOutput:
        self._poll_knobs_file()
        now = self.sloserve_clock()
        snapshot = self._snapshot(now)
        try:
            plan = self._sl_policy.plan(snapshot)
        except Exception as exc:
            self._policy_failed("plan", exc)
            plan = STOCK_POLICY.plan(snapshot)
        self._sl_now = now
        self._sl_step_preempted = {}
        self._sl_admit_views = []
        self._order_running(plan.running_order, tuple([v.request_id for v in snapshot.running]))
        held = None if self._queue_as_planned(snapshot, plan) else self._hold_back(plan.admit_order)
        self.max_num_scheduled_tokens = max(0, min(plan.token_budget, self._sl_base_budget))
        self.scheduler_config.long_prefill_token_threshold = effective_chunk_cap(
            self._sl_base_threshold, plan.prefill_chunk_cap
        )
        try:
            output = super().schedule(throttle_prefills)
        finally:
            self.kv_cache_manager.allocate_slots = self._sl_allocate  # type: ignore[method-assign]
            self.max_num_scheduled_tokens = self._sl_base_budget
            self.scheduler_config.long_prefill_token_threshold = self._sl_base_threshold
            if held is not None:
                self._restore_held(*held)
        self._after_step(snapshot, plan, output, now)
        return output

    def _order_running(self, order: tuple[str, ...], current: tuple[str, ...]) -> None:
        """Policy order first; running requests the plan forgot keep their order at the end."""
        if order == current:
            return
        by_id = {r.request_id: r for r in self.running}
        ordered = [by_id.pop(rid) for rid in order if rid in by_id]
        ordered.extend(r for r in self.running if r.request_id in by_id)
        self.running[:] = ordered

    def _queue_as_planned(self, snapshot: EngineSnapshot, plan: StepPlan) -> bool:
        """True when the plan admits the whole queue in vLLM's own order (the identity plan):
        then vLLM's queues are used untouched, which saves two O(queue) rebuilds per step."""
        if len(plan.admit_order) != len(snapshot.waiting) or self.skipped_waiting:
            return False
        return plan.admit_order == tuple([v.request_id for v in snapshot.waiting])

    def _hold_back(
        self, admit_order: Iterable[str]
    ) -> tuple[list[Request], list[Request], list[Request]]:
        """Leave only the admitted requests in ``self.waiting``, in the plan's order.

        Requests in a blocked state (async KV load, grammar compilation) stay in
        ``skipped_waiting``: they already hold resources and vLLM promotes them.
        Returns both queues as they were and the requests handed to vLLM's queues.
        The passes over the whole queue are C-level (``map``, ``zip``); a
        per-request Python loop only runs when some request is blocked.
        """
        before_waiting = list(self.waiting)
        before_skipped = list(self.skipped_waiting)
        queued = before_skipped + before_waiting
        eligible = dict(zip(map(_request_id, queued), queued, strict=True))
        blocked_waiting: list[Request] = []
        blocked_skipped: list[Request] = []
        if not _BLOCKED_STATUSES.isdisjoint(map(_status, queued)):
            blocked_waiting = [r for r in before_waiting if r.status in _BLOCKED_STATUSES]
            blocked_skipped = [r for r in before_skipped if r.status in _BLOCKED_STATUSES]
            for r in (*blocked_waiting, *blocked_skipped):
                del eligible[r.request_id]
        admitted = [eligible.pop(rid) for rid in dict.fromkeys(admit_order) if rid in eligible]
        admitted += blocked_waiting
        self.waiting = FCFSRequestQueue(admitted)
        self.skipped_waiting = FCFSRequestQueue(blocked_skipped)
        return before_waiting, before_skipped, admitted + blocked_skipped

    def _restore_held(
        self, before_waiting: list[Request], before_skipped: list[Request], passed: list[Request]
    ) -> None:
        """Put held-back and unreached requests back where they were; keep vLLM's additions.

        Of the requests ``passed`` to vLLM's queues, those no longer queued were
        scheduled and leave. Requests vLLM preempted this step were prepended to
        ``self.waiting`` (they come first, as in stock vLLM); requests it moved
        to ``skipped_waiting`` stay there. Requests hash by identity, so the
        filters over the whole queue are C-level.
        """
        now_waiting = list(self.waiting)
        now_skipped = list(self.skipped_waiting)
        still_queued = {*now_waiting, *now_skipped}
        scheduled = {r for r in passed if r not in still_queued}
        passed_set = set(passed)
        waiting = [r for r in now_waiting if r not in passed_set]
        waiting += filterfalse(scheduled.union(now_skipped).__contains__, before_waiting)
        before_skipped_set = set(before_skipped)
        skipped = [r for r in now_skipped if r not in before_skipped_set]
        skipped += filterfalse(scheduled.__contains__, before_skipped)
        self.waiting = FCFSRequestQueue(waiting)
        self.skipped_waiting = FCFSRequestQueue(skipped)

    def _after_step(
        self, snapshot: EngineSnapshot, plan: StepPlan, output: SchedulerOutput, now: float
    ) -> None:
        stats = self.sloserve_stats
        stats.steps += 1
        stats.last_plan = plan
        stats.last_scheduled_tokens = output.total_num_scheduled_tokens
        for rid in list(self._sl_recompute_ids):
            request = self.requests.get(rid)
            if request is None or request.status == RequestStatus.RUNNING:
                self._sl_recompute_ids.discard(rid)
        for rid in list(self._sl_swapped_ids):
            request = self.requests.get(rid)
            meta = self._sl_meta.get(rid)
            if request is None or meta is None:
                self._sl_swapped_ids.discard(rid)
            elif request.status == RequestStatus.RUNNING:
                meta.swapped_tokens = 0
                meta.touch()
                self._sl_swapped_ids.discard(rid)
        if self._sl_step_preempted or now - self._sl_metrics_at >= self.sloserve_metrics_interval_s:
            self._sl_metrics_at = now
            self.sloserve_metrics.record_step(snapshot, plan, self._sl_step_preempted, now)
            if self._sl_state_path is not None:
                self._publish_state(snapshot)

    def _publish_state(self, snapshot: EngineSnapshot) -> None:
        """Write the router-facing snapshot; a failed write is logged, never fatal."""
        assert self._sl_state_path is not None
        name = engine_id()
        cost = self._sl_cost_model or cost_model_for()
        try:
            order = self._sl_policy.start_deadline(snapshot.now)
        except Exception as exc:
            self._policy_failed("start_deadline", exc)
            order = STOCK_POLICY.start_deadline(snapshot.now)
        doc = snapshot_from_view(
            snapshot, name, name, cost, start_deadline=order, freed=self._sl_freed
        ).to_json()
        try:
            write_atomically(self._sl_state_path, json.dumps(doc))
        except OSError as exc:
            log.warning("cannot write engine state to %s: %s", self._sl_state_path, exc)

    # ---------------------------------------------------------------- gates

    def _install_gates(self) -> None:
        allocate = self.kv_cache_manager.allocate_slots
        self._sl_allocate: Callable[..., Any] = allocate

        def gated_allocate_slots(
            request: Request, num_new_tokens: int, *args: Any, **kw: Any
        ) -> Any:
            if (
                request.status in _ADMISSION_STATUSES
                and self._blocks_held(request.request_id) == 0
                and not self._admission_allowed(request)
            ):
                return None
            return allocate(request, num_new_tokens, *args, **kw)

        self._sl_gated_allocate: Callable[..., Any] = gated_allocate_slots
        if self.connector is None:
            return
        match = self.connector.get_num_new_matched_tokens

        def gated_match(request: Request, num_computed_tokens: int) -> tuple[int | None, bool]:
            if request.request_id in self._sl_recompute_ids:
                return 0, False
            return match(request, num_computed_tokens)

        self.connector.get_num_new_matched_tokens = gated_match  # type: ignore[method-assign]

    def _select_waiting_queue_for_scheduling(self) -> RequestQueue | None:
        """Put the ``can_admit`` gate on ``allocate_slots`` for vLLM's waiting loop only.

        vLLM calls this first in every iteration of its waiting loop and nowhere
        else, so the running loop (one ``allocate_slots`` per running request)
        skips the wrapper; ``schedule`` takes the gate off again.
        """
        self.kv_cache_manager.allocate_slots = self._sl_gated_allocate  # type: ignore[method-assign]
        return super()._select_waiting_queue_for_scheduling()

    def _admission_allowed(self, request: Request) -> bool:
        """Ask ``can_admit``; running views are built once per step, then extended.

        Within a step ``self.running`` only grows (admissions append), so the
        views of earlier entries are reused: O(running) per step, not per
        admission attempt.
        """
        views = self._sl_admit_views
        views.extend(self._views(self.running[len(views) :]))
        pool = self.kv_cache_manager.block_pool
        try:
            allowed = self._sl_policy.can_admit(
                free_blocks=pool.get_num_free_blocks(),
                total_blocks=pool.num_gpu_blocks - 1,
                block_size=self.block_size,
                running=tuple(views),
                candidate=self._view(request),
                now=self._sl_now,
            )
        except Exception as exc:
            self._policy_failed("can_admit", exc)
            allowed = True
        if not allowed:
            self.sloserve_stats.admissions_refused += 1
        return allowed

    def _offload_prompt_only(self) -> bool:
        transfer = self.vllm_config.kv_transfer_config
        extra = getattr(transfer, "kv_connector_extra_config", None) or {}
        return bool(extra.get("offload_prompt_only", True))

    def _preempt_request(self, request: Request, timestamp: float) -> None:
        meta = self._sl_meta.get(request.request_id)
        mode = PreemptionMode.RECOMPUTE
        if meta is not None:
            try:
                asked = self._sl_policy.preemption_mode(self._view(request))
            except Exception as exc:
                self._policy_failed("preemption_mode", exc)
                asked = PreemptionMode.RECOMPUTE
            if asked is PreemptionMode.SWAP and self.connector is None:
                self.sloserve_stats.swap_unavailable += 1
            elif asked is PreemptionMode.SWAP:
                mode = PreemptionMode.SWAP
            computed = min(request.num_computed_tokens, request.num_tokens)
            if self._sl_offload_prompt_only:
                computed = min(computed, request.num_prompt_tokens)
            meta.swapped_tokens = computed if mode is PreemptionMode.SWAP else 0
            meta.touch()
            if meta.swapped_tokens:
                self._sl_swapped_ids.add(request.request_id)
        if mode is PreemptionMode.RECOMPUTE:
            self._sl_recompute_ids.add(request.request_id)
        else:
            self._sl_recompute_ids.discard(request.request_id)
        self._sl_step_preempted[mode] = self._sl_step_preempted.get(mode, 0) + 1
        self.sloserve_stats.preemptions[mode] += 1
        super()._preempt_request(request, timestamp)

    # ---------------------------------------------------------------- lifecycle

    def add_request(self, request: Request) -> None:
        if request.request_id not in self.requests:
            self._register(request)
        super().add_request(request)

    def _register(self, request: Request) -> None:
        default = self._sl_policy.knobs.slo_defaults
        params = request.sampling_params
        extra = params.extra_args if params is not None else None
        try:
            slo = parse_slo(extra, default)
        except InvalidSLOError as exc:  # the proxy answers 400 first; only the loopback port
            self.sloserve_stats.invalid_slo += 1
            log.warning("sloserve: request %s: %s; using defaults", request.request_id, exc)
            slo = default
        declared = self._sl_knobs.slo_defaults.declared_classes()
        label = slo_class_label(slo.slo_class, declared)
        if label != slo.slo_class:
            slo = slo.model_copy(update={"slo_class": label})
        meta = RequestMeta(
            slo=slo,
            predicted_output=0,
            output_bound=0,
            max_output_tokens=max(self.max_model_len - request.num_prompt_tokens, 0),
        )
        prediction = self._predict(self._sl_policy, self._arrival_info(request, meta))
        meta.predicted_output = prediction.predicted_output
        meta.output_bound = prediction.output_bound
        self._sl_meta[request.request_id] = meta

    def update_from_output(
        self, scheduler_output: SchedulerOutput, model_runner_output: ModelRunnerOutput
    ) -> Any:
        self._sl_now = self.sloserve_clock()
        result = super().update_from_output(scheduler_output, model_runner_output)
        self._note_tokens(scheduler_output.num_scheduled_tokens)
        return result

    def _note_tokens(self, scheduled: Iterable[str]) -> None:
        """Stamp first-token times and each request's longest gap between tokens.

        One pass over the step's requests after vLLM's update instead of a hook
        in its per-token path; requests that finished in this output are
        stamped in :meth:`_finished` (vLLM freed them inside the update).
        """
        now = self._sl_now
        metas = self._sl_meta
        requests = self.requests
        for rid in scheduled:
            meta = metas.get(rid)
            request = requests.get(rid)
            if meta is None or request is None:
                continue
            produced = request.num_output_tokens
            if produced <= meta.tokens_seen:
                continue
            _note_token(meta, produced, now)
            if meta.first_token_time is None:
                meta.first_token_time = now
                meta.touch()

    def _free_request(
        self, request: Request, delay_free_blocks: bool = False
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        meta = self._sl_meta.pop(request.request_id, None)
        self._sl_recompute_ids.discard(request.request_id)
        self._sl_swapped_ids.discard(request.request_id)
        if meta is not None:
            self._finished(request, meta)
        return super()._free_request(request, delay_free_blocks)

    def _finished(self, request: Request, meta: RequestMeta) -> None:
        if request.num_output_tokens > meta.tokens_seen:
            _note_token(meta, request.num_output_tokens, self._sl_now)
        if meta.first_token_time is None and request.num_output_tokens > 0:
            meta.first_token_time = self._sl_now
        outcome = _OUTCOMES.get(request.status, Outcome.FINISHED)
        if outcome is not Outcome.FINISHED or meta.first_token_time is None:
            self.sloserve_stats.aborted += 1
            ended = Outcome.ERROR if outcome is Outcome.FINISHED else outcome  # no token at all
            self.sloserve_metrics.record_ended(meta.slo.slo_class, ended, self._sl_now)
            return
        # A stopped request is freed inside the update that delivered its last token.
        finish_time = self._sl_now
        self.sloserve_stats.finished += 1
        if request.status in _LEARNABLE_FINISHES:
            try:
                self._sl_policy.on_finish(
                    FinishedInfo(
                        request_id=request.request_id,
                        prompt_tokens=request.num_prompt_tokens,
                        output_tokens=request.num_output_tokens,
                        slo=meta.slo,
                        predicted_output=meta.predicted_output,
                        finish_time=finish_time,
                    )
                )
            except Exception as exc:
                self._policy_failed("on_finish", exc)
        self.sloserve_metrics.record_finish(
            FinishedRequest(
                slo=meta.slo,
                arrival_time=request.arrival_time,
                first_token_time=meta.first_token_time,
                finish_time=finish_time,
                output_tokens=request.num_output_tokens,
                predicted_output=meta.predicted_output,
                max_gap_s=meta.max_gap_s,
                stall_bound_s=self._sl_policy.knobs.stall_bound_s,
            ),
            self._sl_now,
        )


class SLOScheduler(StepLogMixin, SLOSchedulerMixin, AsyncScheduler):
    """Production scheduler (vLLM's asynchronous scheduling, the 0.26.0 default)."""


class SLOSyncScheduler(StepLogMixin, SLOSchedulerMixin, Scheduler):
    """Synchronous variant: ``async_scheduling=False`` runs, step-logged GPU runs and tests."""


class StockTimingScheduler(StepLogMixin, AsyncScheduler):
    """Stock vLLM 0.26.0 (async) plus only the step log: the baseline of GPU benchmarks."""


class StockTimingSyncScheduler(StepLogMixin, Scheduler):
    """Stock synchronous vLLM plus only the step log (the cost-model calibration runs)."""


def _engine_core_set_knobs(self: EngineCore, document: dict[str, Any]) -> dict[str, Any]:
    """Utility RPC: ``call_utility("sloserve_set_knobs", doc)``, handled between steps."""
    return _sloserve_scheduler(self).sloserve_set_knobs(document)


def _engine_core_get_knobs(self: EngineCore) -> dict[str, Any]:
    """Utility RPC: ``call_utility("sloserve_get_knobs")`` -> applied ``KnobsState``."""
    return _sloserve_scheduler(self).sloserve_knobs_state()


def _sloserve_scheduler(core: EngineCore) -> SLOSchedulerMixin:
    scheduler = core.scheduler
    if not isinstance(scheduler, SLOSchedulerMixin):
        raise TypeError("the engine core does not run sloserve's scheduler (--scheduler-cls)")
    return scheduler


EngineCore.sloserve_set_knobs = _engine_core_set_knobs  # type: ignore[attr-defined]
EngineCore.sloserve_get_knobs = _engine_core_get_knobs  # type: ignore[attr-defined]
