"""``sloserve-engine --simulated``: the simulator's engine loop, paced by the wall clock.

A single asyncio task runs :class:`~sloserve_engine.sim.SimEngine` one step
at a time and sleeps for each step's modelled duration, so clients see the
token timing a GPU with the calibrated cost model would give them; no GPU
and no thread is involved. HTTP handlers add requests between steps (they run
on the same event loop), knob changes are applied at the top of the next
step, and every step and finished request is reported through the same
:class:`~sloserve_engine.telemetry.metrics.EngineMetrics` calls the vLLM
scheduler makes.

``time_scale`` > 1 runs the modelled GPU faster than real time (tests): the
engine clock is ``time_scale`` × wall-clock seconds, so SLO targets and
attainment stay in modelled seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

from ..contract.knobs import Knobs
from ..contract.slo import SLO, slo_class_label
from ..policy import apply_knobs
from ..policy.guard import GuardedPolicy, PolicyArrivalError, PolicyErrorLog
from ..policy.views import EngineSnapshot
from ..sim import SimEngine, StepResult
from ..telemetry.attainment import Outcome
from ..telemetry.metrics import EngineMetrics, FinishedRequest
from .errors import APIError
from .knobs_store import KnobsStore

log = logging.getLogger(__name__)

IDLE_REFRESH_S = 1.0
"""How often an idle engine ages the attainment window (wall seconds)."""
BLOCKED_RETRY_S = 0.005
"""Wall seconds between retries when requests wait but nothing could be scheduled."""


class _Stream:
    """One submitted request as the HTTP side sees it."""

    def __init__(
        self,
        engine: SimulatedEngine,
        request_id: str,
        arrival: float,
        slo: SLO,
        predicted_output: int,
    ) -> None:
        self._engine = engine
        self.request_id = request_id
        self.arrival = arrival
        self.slo = slo
        self.predicted_output = predicted_output
        self.first_token_time: float | None = None
        self.last_token_time: float | None = None
        self.max_gap_s = 0.0
        """Longest gap between two of its tokens (engine clock), for strict attainment."""
        self.produced = 0
        self.done = False
        self.queue: asyncio.Queue[int | APIError | None] = asyncio.Queue()

    async def tokens(self) -> AsyncIterator[int]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if isinstance(item, APIError):
                raise item
            yield item

    def cancel(self) -> None:
        """Client gone (or response complete): abort the request if it is still running."""
        if not self.done:
            self.done = True
            self._engine.abort(self.request_id)


class SimulatedEngine:
    """The real-time driver; also the completions backend of the simulated server."""

    def __init__(
        self,
        engine: SimEngine,
        metrics: EngineMetrics,
        store: KnobsStore,
        *,
        served_model_name: str,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.engine = engine
        self.metrics = metrics
        self.store = store
        self.served_model_name = served_model_name
        self.max_model_len = engine.config.max_model_len
        self.time_scale = time_scale
        self._clock = clock
        self._t0 = clock() - engine.now / time_scale
        self._streams: dict[str, _Stream] = {}
        self._pending_knobs: Knobs | None = store.knobs
        self._wake = asyncio.Event()
        self.steps = 0
        self.lag_s = 0.0
        """Wall seconds the last step's tokens came out later than modelled (CPU too slow)."""
        self.failure: str | None = None
        """Why the engine loop stopped, once it has crashed (health then answers 503)."""
        self._error_log = PolicyErrorLog(log)
        engine.policy = GuardedPolicy(engine.policy, self._policy_failed)
        self.last_view: EngineSnapshot | None = None
        """What the policy saw at the last step (the source of ``GET /sloserve/state``)."""
        store.subscribe(self._on_knobs)

    def now(self) -> float:
        """Engine-clock seconds (wall clock × ``time_scale``)."""
        return (self._clock() - self._t0) * self.time_scale

    def default_slo(self) -> SLO:
        return self.store.knobs.slo_defaults

    def submit(self, request_id: str, prompt_tokens: int, max_tokens: int, slo: SLO) -> _Stream:
        if self.failure is not None:
            raise APIError(f"engine failed: {self.failure}", status=503)
        arrival = self.now()
        declared = self.store.knobs.slo_defaults.declared_classes()
        label = slo_class_label(slo.slo_class, declared)
        if label != slo.slo_class:
            slo = slo.model_copy(update={"slo_class": label})
        try:
            prediction = self.engine.add_request(
                request_id, prompt_tokens, max_tokens, slo=slo, arrival_time=arrival
            )
        except ValueError as exc:
            raise APIError(str(exc), "prompt") from None
        except PolicyArrivalError as exc:
            raise APIError(str(exc), status=500) from None
        stream = _Stream(self, request_id, arrival, slo, prediction.predicted_output)
        self._streams[request_id] = stream
        self._wake.set()
        return stream

    def abort(self, request_id: str) -> None:
        """The client went away: drop the request and count it as aborted (an SLO miss)."""
        stream = self._streams.pop(request_id, None)
        if stream is not None:
            self.engine.abort_request(request_id)
            self.metrics.record_ended(stream.slo.slo_class, Outcome.ABORTED, self.now())

    def record_refused(self, slo_class: str | None, status: int) -> None:
        outcome = Outcome.ERROR if status >= 500 else Outcome.REJECTED
        self.metrics.record_ended(slo_class or self.default_slo().slo_class, outcome, self.now())

    @property
    def open_requests(self) -> int:
        return len(self._streams)

    def _on_knobs(self, knobs: Knobs) -> None:
        self._pending_knobs = knobs
        self._wake.set()

    def _apply_knobs(self) -> None:
        knobs, self._pending_knobs = self._pending_knobs, None
        if knobs is None:
            return
        policy = apply_knobs(self.engine.policy, knobs, self.engine.profile.step)
        if not isinstance(policy, GuardedPolicy):
            policy = GuardedPolicy(policy, self._policy_failed)
        self.engine.policy = policy
        self.metrics.set_slo_classes(knobs.slo_defaults.declared_classes())
        self.metrics.set_knobs_revision(knobs.revision())
        log.info("applied knobs revision %d (policy %s)", knobs.revision(), knobs.policy)

    def _policy_failed(self, call: str, exc: Exception) -> None:
        """Count and (rate-limited) log a policy error; the guard decided what happens instead."""
        self.metrics.record_policy_error(call)
        self._error_log.report(call, exc, time.monotonic())

    async def run(self) -> None:
        """Step forever; cancel the task to stop. A crash fails open requests and health."""
        try:
            await self._loop()
        except Exception as exc:
            log.exception("simulated engine loop crashed")
            self.failure = f"{type(exc).__name__}: {exc}"
            error = APIError(f"engine failed: {self.failure}", status=503)
            for stream in self._streams.values():
                stream.done = True
                stream.queue.put_nowait(error)
                self.metrics.record_ended(stream.slo.slo_class, Outcome.ERROR, self.now())
            self._streams.clear()
            raise

    async def _loop(self) -> None:
        while True:
            self._apply_knobs()
            result = self.engine.step(self.now())
            self.steps += 1
            self._record_step(result)
            if result.idle:
                await self._wait_for_work()
                continue
            due = self._t0 + result.end / self.time_scale
            await asyncio.sleep(max(0.0, due - self._clock()))
            self.lag_s = max(0.0, self._clock() - due)
            self._deliver(result)

    async def _wait_for_work(self) -> None:
        timeout = BLOCKED_RETRY_S if self.engine.has_unfinished else IDLE_REFRESH_S
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            self.metrics.refresh(self.now())

    def _record_step(self, result: StepResult) -> None:
        """An idle step reports the current queues; chunk and reserve keep the last plan's."""
        snapshot = result.snapshot or self.engine.snapshot()
        self.last_view = snapshot
        preempted = Counter(mode for _, mode in result.preempted)
        self.metrics.record_step(snapshot, result.plan, preempted, now=self.engine.now)

    def _deliver(self, result: StepResult) -> None:
        end = result.end
        for rid in result.emitted:
            stream = self._streams.get(rid)
            if stream is None:
                continue
            if stream.first_token_time is None:
                stream.first_token_time = end
            if stream.last_token_time is not None:
                stream.max_gap_s = max(stream.max_gap_s, end - stream.last_token_time)
            stream.last_token_time = end
            stream.queue.put_nowait(stream.produced)
            stream.produced += 1
        for rid in result.finished:
            stream = self._streams.pop(rid, None)
            if stream is None:
                continue
            stream.done = True
            stream.queue.put_nowait(None)
            self.metrics.record_finish(
                FinishedRequest(
                    slo=stream.slo,
                    arrival_time=stream.arrival,
                    first_token_time=stream.first_token_time or end,
                    finish_time=end,
                    output_tokens=stream.produced,
                    predicted_output=stream.predicted_output,
                    max_gap_s=stream.max_gap_s,
                    stall_bound_s=self.engine.policy.knobs.stall_bound_s,
                ),
                now=end,
            )
