"""What an engine publishes for placement (≥ 10 Hz) and how an engine computes it.

Routers never see request views: an engine condenses its scheduler state into
one small :class:`EngineSnapshot` so that polling 8 engines at 10 Hz costs
little and the router's decision is O(engines). The engine computes it with
:func:`snapshot_from_view` from the same ``policy.views.EngineSnapshot`` its
policy plans with (simulated engine, vLLM adapter and the cluster simulator
alike), so what the router predicts comes from the engine's own predictor.

The wire form is camelCase JSON (:meth:`EngineSnapshot.to_json`,
:func:`snapshot_from_json`), like the knob document.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from ..policy.costmodel import StepCostModel
from ..policy.ordering import StartDeadline
from ..policy.views import EngineSnapshot as EngineView
from .drain import FreedMeter

MAX_QUEUE_POINTS = 16
"""Most points in :attr:`EngineSnapshot.queue_by_start` (as many as declared SLO classes may
be): the snapshot stays small whatever the queue length."""


ARRIVAL_WINDOW_S = 2.0
"""Window (s) over which an engine measures its recent arrival work by TTFT target
(:attr:`EngineSnapshot.arrival_work_by_ttft`): the requests in its view (waiting or running)
that arrived within it. Short against a served request's life (its prefill plus hundreds of
decode steps), so few that arrived in it have left the view; long enough to hold several
arrivals per class at the rates one engine serves. Fixed by that argument, not tuned."""


class ArrivalPoint(NamedTuple):
    """Requests with TTFT target ``ttft_s`` arrived at the engine over the last
    :data:`ARRIVAL_WINDOW_S` bringing ``work_per_s`` seconds of prefill and ``kv_tokens_per_s``
    KV tokens (prompt plus output bound, what the engine reserves for them) per second.
    On the wire: a 3-element list."""

    ttft_s: float
    work_per_s: float
    kv_tokens_per_s: float


class QueuePoint(NamedTuple):
    """A new request that must start before ``start_by_s`` (seconds after the snapshot) waits
    ``delay_s`` behind ``prompt_tokens`` of queued prefill. On the wire: a 3-element list."""

    start_by_s: float
    delay_s: float
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """One engine's load as the router sees it (times on the engine's clock)."""

    engine_id: str
    region: str
    """Shield region of the engine (SROLE: a group of engines one shield guards)."""
    kv_total_tokens: int
    kv_free_tokens: int
    """Unallocated KV now."""
    kv_reserved_tokens: int
    """KV already promised but not allocated: prompts + predicted outputs of waiting requests
    and the predicted growth of running ones. Free minus reserved is what a new request may
    count on."""
    waiting: int
    running: int
    waiting_prompt_tokens: int
    """Prefill tokens queued ahead of a new request (waiting prompts and unfinished chunks)."""
    predicted_queue_delay_s: float
    """Engine's estimate of how long a request arriving now waits before its prefill starts
    when it waits behind everything queued (FCFS; a request whose latest start is past every
    point of :attr:`queue_by_start`; an engine that publishes no points)."""
    kv_drain_tokens_per_s: float
    """Rate at which running requests are predicted to free KV (tokens/s); lets the router
    price waiting for KV instead of treating a full cache as unusable."""
    max_batched_tokens: int
    """Token budget per step (prefill throughput per step)."""
    observed_at: float
    """When the engine took the snapshot (s); ``now - observed_at`` is the state's age."""
    queue_by_start: tuple[QueuePoint, ...] = ()
    """What a new request waits behind by its place in the engine's admission order (at
    most :data:`MAX_QUEUE_POINTS`, ``startByS`` ascending; :meth:`queue_ahead`). Empty when
    the engine's order is not by deadline, or from an engine that predates it: then every
    request reads the class-blind totals."""
    arrival_work_by_ttft: tuple[ArrivalPoint, ...] = ()
    """Recent arrival work by TTFT target (at most :data:`MAX_QUEUE_POINTS`, ``ttftS``
    strictly ascending): the work that arrives while a looser request waits and passes it
    in the engine's order (:func:`wait_with_passing`), for prefill and for KV. Empty when
    the engine's order is not by deadline (nothing passes), or from an engine that predates
    it."""
    kv_freed_tokens_per_s: float | None = None
    """KV the engine actually freed per second over the last
    :data:`~sloserve_engine.router.drain.DRAIN_WINDOW_S` (finished, aborted and preempted
    requests; :class:`~sloserve_engine.router.drain.FreedMeter`). ``None`` from an engine that
    predates it or keeps no meter: a router then prices the KV wait at
    :attr:`kv_drain_tokens_per_s`."""

    def __post_init__(self) -> None:
        if not self.engine_id:
            raise ValueError("engineId must not be empty")
        for name in (
            "kv_total_tokens",
            "kv_free_tokens",
            "kv_reserved_tokens",
            "waiting",
            "running",
            "waiting_prompt_tokens",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{_camel(name)} must be >= 0")
        if self.kv_free_tokens > self.kv_total_tokens:
            raise ValueError("kvFreeTokens must not exceed kvTotalTokens")
        if self.max_batched_tokens < 1:
            raise ValueError("maxBatchedTokens must be >= 1")
        freed = self.kv_freed_tokens_per_s
        if freed is not None and (not math.isfinite(freed) or freed < 0):
            raise ValueError("kvFreedTokensPerS must be a finite number >= 0")
        for name in ("predicted_queue_delay_s", "kv_drain_tokens_per_s", "observed_at"):
            value = getattr(self, name)
            if not math.isfinite(value) or (name != "observed_at" and value < 0):
                raise ValueError(f"{_camel(name)} must be a finite number >= 0")
        if len(self.queue_by_start) > MAX_QUEUE_POINTS:
            raise ValueError(f"queueByStart must have at most {MAX_QUEUE_POINTS} points")
        last = -math.inf
        for p in self.queue_by_start:
            if not all(math.isfinite(v) for v in p) or p.delay_s < 0 or p.prompt_tokens < 0:
                raise ValueError("queueByStart points must be finite, with delay and tokens >= 0")
            if p.start_by_s < last:
                raise ValueError("queueByStart must be in ascending startByS")
            last = p.start_by_s
        if len(self.arrival_work_by_ttft) > MAX_QUEUE_POINTS:
            raise ValueError(f"arrivalWorkByTtft must have at most {MAX_QUEUE_POINTS} points")
        last = 0.0
        for a in self.arrival_work_by_ttft:
            if not all(math.isfinite(v) for v in a) or a.ttft_s <= last or min(a) < 0:
                raise ValueError(
                    "arrivalWorkByTtft points must be finite, ttftS > 0 strictly ascending,"
                    " rates >= 0"
                )
            last = a.ttft_s

    def queue_ahead(self, start_by_s: float) -> tuple[float, int]:
        """(Queue delay, queued prefill tokens) ahead of a new request that must start within
        ``start_by_s`` of :attr:`observed_at`: the first point it starts before, else the totals.

        A point may count a few requests that start after the new one (the points are a
        bounded sample of the order), never fewer than go first: the wait is not understated.
        """
        for p in self.queue_by_start:
            if start_by_s < p.start_by_s:
                return p.delay_s, p.prompt_tokens
        return self.predicted_queue_delay_s, self.waiting_prompt_tokens

    @property
    def kv_headroom_tokens(self) -> int:
        """KV a new request can count on now: free minus what is already promised."""
        return max(self.kv_free_tokens - self.kv_reserved_tokens, 0)

    @property
    def kv_usage(self) -> float:
        """Share of KV allocated or promised (least-KV's load signal)."""
        used = self.kv_total_tokens - self.kv_headroom_tokens
        return used / self.kv_total_tokens if self.kv_total_tokens else 1.0

    def age_s(self, now: float) -> float:
        """Age of this state at ``now`` (never negative: clocks may disagree slightly)."""
        return max(now - self.observed_at, 0.0)

    def to_json(self) -> dict[str, Any]:
        doc = {_camel(f.name): getattr(self, f.name) for f in fields(self)}
        doc[_POINTS] = [list(p) for p in self.queue_by_start]
        doc[_ARRIVALS] = [list(a) for a in self.arrival_work_by_ttft]
        if self.kv_freed_tokens_per_s is None:
            del doc[_FREED]
        return doc


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


_WIRE = {_camel(f.name): f for f in fields(EngineSnapshot)}
_POINTS = "queueByStart"
"""Optional on the wire: engines that predate it publish only the totals."""
_ARRIVALS = "arrivalWorkByTtft"
"""Optional on the wire: engines that predate it publish no arrival work (nothing passes)."""
_FREED = "kvFreedTokensPerS"
"""Optional on the wire: engines that predate it publish no measured drain."""


def _points_from_json(value: Any) -> tuple[QueuePoint, ...]:
    if not isinstance(value, list) or len(value) > MAX_QUEUE_POINTS:
        raise ValueError(
            f"snapshot field {_POINTS!r} must be a list of at most {MAX_QUEUE_POINTS} points"
        )
    points = []
    for p in value:
        if (
            not isinstance(p, list)
            or len(p) != 3
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in p)
            or not isinstance(p[2], int)
        ):
            raise ValueError(
                f"snapshot field {_POINTS!r}: each point is [startByS, delayS, tokens]"
            )
        points.append(QueuePoint(float(p[0]), float(p[1]), p[2]))
    return tuple(points)


def _arrivals_from_json(value: Any) -> tuple[ArrivalPoint, ...]:
    if (
        not isinstance(value, list)
        or len(value) > MAX_QUEUE_POINTS
        or any(
            not isinstance(a, list)
            or len(a) != 3
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in a)
            for a in value
        )
    ):
        raise ValueError(
            f"snapshot field {_ARRIVALS!r} must be a list of at most {MAX_QUEUE_POINTS}"
            " points [ttftS, workPerS, kvTokensPerS]"
        )
    return tuple(ArrivalPoint(float(a[0]), float(a[1]), float(a[2])) for a in value)


def snapshot_from_json(doc: Any) -> EngineSnapshot:
    """Parse the wire form; ``ValueError`` names the field that is missing or wrong."""
    if not isinstance(doc, dict):
        raise ValueError("snapshot must be a JSON object")
    unknown = sorted(set(doc) - set(_WIRE))
    if unknown:
        raise ValueError(f"unknown snapshot field {unknown[0]!r}")
    values: dict[str, Any] = {}
    for key, f in _WIRE.items():
        if key in _OPTIONAL:
            if key in doc:
                values[f.name] = _OPTIONAL[key](doc[key])
            continue
        if key not in doc:
            raise ValueError(f"snapshot field {key!r} is required")
        value = doc[key]
        if f.type in ("str",):
            if not isinstance(value, str):
                raise ValueError(f"snapshot field {key!r} must be a string")
        elif f.type in ("int",):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"snapshot field {key!r} must be an integer")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"snapshot field {key!r} must be a number")
        values[f.name] = float(value) if f.type == "float" else value
    return EngineSnapshot(**values)


def _freed_from_json(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"snapshot field {_FREED!r} must be a number")
    return float(value)


_OPTIONAL: dict[str, Any] = {
    _POINTS: _points_from_json,
    _ARRIVALS: _arrivals_from_json,
    _FREED: _freed_from_json,
}
"""Wire fields an older engine may leave out, with their parsers."""


def wait_with_passing(
    queued_s: float, start_by_s: float, ttft_s: float, rates: Iterable[tuple[float, float]]
) -> float:
    """Wait before a request's start, counting the work that arrives meanwhile and passes it.

    ``queued_s``: the wait for what is there now (:meth:`EngineSnapshot.queue_ahead`, or the
    wait for KV). A request with TTFT target ``ttft_s`` that must start within ``start_by_s``
    also waits for arrivals with a tighter target ``T' < ttft_s`` whose start deadline (at
    most arrival plus ``T'``) is earlier than its own: those arriving in the first
    ``w = start_by_s - T'`` seconds. ``rates``: ``(T', r)`` pairs, ``r`` the seconds of the
    same resource that such arrivals take per second. The wait ``W`` solves
    ``W = Q + sum(r * min(W, w))``; with one class and ``W < w`` that is ``Q / (1 - r)``.
    The smallest solution is returned; it is finite (``Q + sum(r * w)``) even when the rates
    add up to 1 or more. Arrivals with the same or a looser target do not pass it, so a
    single-class workload reads ``queued_s`` unchanged.
    """
    windows = sorted(
        (start_by_s - t, r) for t, r in rates if t < ttft_s and t < start_by_s and r > 0
    )
    if not windows:
        return queued_s
    rate = sum(r for _, r in windows)
    closed = 0.0  # sum of r * w over the windows that ended before W
    for w, r in windows:
        if rate < 1.0:
            wait = (queued_s + closed) / (1.0 - rate)
            if wait <= w:
                return wait
        closed += r * w
        rate -= r
    return queued_s + closed


def step_overhead_s(cost: StepCostModel, running: int) -> float:
    """Time of one step that is not prefill: fixed cost plus one decode per running request."""
    return cost.c0_s + cost.decode_seq_s * running


def prefill_time_s(cost: StepCostModel, tokens: int, running: int, budget: int) -> float:
    """Time to push ``tokens`` prefill tokens through steps of ``budget`` tokens each.

    Each step also carries the running decodes, which is why a busy engine prefills slower.
    """
    if tokens <= 0:
        return 0.0
    steps = -(-tokens // max(budget, 1))
    return tokens * cost.prefill_token_s + steps * step_overhead_s(cost, running)


def kv_wait_s(deficit_tokens: int, drain_tokens_per_s: float) -> float:
    """Time until ``deficit_tokens`` of KV are freed at the drain rate (inf if nothing drains)."""
    if deficit_tokens <= 0:
        return 0.0
    if drain_tokens_per_s <= 0:
        return math.inf
    return deficit_tokens / drain_tokens_per_s


def reserved_kv_wait_s(
    free_tokens: int, promised_tokens: int, need_tokens: int, freed_tokens_per_s: float
) -> float:
    """Seconds until ``need_tokens`` fit beside ``promised_tokens`` in ``free_tokens`` of KV,
    at ``freed_tokens_per_s`` (0 when they fit now; ``inf`` when nothing is freed).

    ``promised_tokens``: KV the engine gives out before the new request's prompt: the output
    growth reserved for running requests and the KV of the requests that start before it.
    :func:`kv_wait_s` of the prompts ahead against free KV alone leaves that out, and a
    request one step from finishing frees its KV once, so the wait is priced at a rate
    measured over seconds (:class:`~sloserve_engine.router.drain.FreedMeter`).
    """
    return kv_wait_s(promised_tokens + need_tokens - free_tokens, freed_tokens_per_s)


def snapshot_from_view(
    view: EngineView,
    engine_id: str,
    region: str,
    cost: StepCostModel,
    observed_at: float | None = None,
    start_deadline: StartDeadline | None = None,
    freed: FreedMeter | None = None,
) -> EngineSnapshot:
    """Condense an engine's scheduler state (the policy's view) into what it publishes.

    Reserved KV uses each request's ``output_bound`` (the predictor's bound at
    ``predictorConfidence``, CacheOPT's estimate), so a router sees the engine's
    own demand estimates instead of guessing them. Queue delay is the prefill
    work queued ahead plus the wait for KV when the prompts ahead do not fit.

    ``start_deadline`` is the policy's admission order (:meth:`.Policy.start_deadline`):
    with it, :attr:`EngineSnapshot.queue_by_start` says what a new request waits behind by
    when it must start, so a tight-SLO request is not predicted to wait behind loose-SLO
    work the engine lets it pass. Running prefills and streamed victims always go first.

    ``freed``: the engine's meter of KV actually freed; it takes this view and the snapshot
    publishes its rate (:attr:`EngineSnapshot.kv_freed_tokens_per_s`).
    """
    bs = view.block_size
    reserved = 0
    first_prefill = 0  # goes before any new request
    first_kv = 0
    ordered: list[tuple[float, int, int]] = []  # (start deadline, prefill tokens, KV tokens)
    for r in view.waiting:
        need = r.prompt_tokens + max(r.output_bound, r.output_tokens + 1)
        reserved += need
        prefill = max(r.total_tokens - r.swapped_tokens, 1)
        due = -math.inf if start_deadline is None else start_deadline(r)
        if math.isfinite(due):
            ordered.append((due - view.now, prefill, r.total_tokens))
        else:
            first_prefill += prefill
            first_kv += r.total_tokens
    drain = 0.0
    step = step_overhead_s(cost, len(view.running))
    releases: list[tuple[int, int]] = []
    for r in view.running:
        held = r.blocks_held * bs
        grow = r.prompt_tokens + max(r.output_bound, r.output_tokens + 1) - held
        reserved += max(grow, 0)
        if r.in_prefill:
            first_prefill += r.remaining_tokens
        remaining = r.predicted_output - r.output_tokens
        if remaining <= 0:  # past its point prediction: assume as much again (renewal guess)
            remaining = max(r.predicted_output, 1)
        releases.append((remaining, held))
        drain += held / (remaining * step)
    releases.sort()
    free = view.free_blocks * bs

    def wait(prefill_tokens: int, kv_tokens: int) -> float:
        """Prefill of the work ahead, plus the wait for KV when its prompts do not fit."""
        delay = prefill_time_s(cost, prefill_tokens, len(view.running), view.max_num_batched_tokens)
        deficit = kv_tokens - free
        if deficit > 0:
            # The queue ahead needs KV the running requests still hold: wait for the
            # soonest finishers until enough is freed.
            freed = 0
            for remaining, held in releases:
                freed += held
                if freed >= deficit:
                    return delay + remaining * step
            delay += kv_wait_s(deficit, drain) if drain > 0 else 0.0
        return delay

    recent: dict[float, tuple[int, int]] = {}  # TTFT target -> (prompt, KV) tokens arrived
    if start_deadline is not None:
        for r in (*view.waiting, *view.running):
            if r.arrival_time >= view.now - ARRIVAL_WINDOW_S:
                prompt, kv = recent.get(r.slo.ttft_s, (0, 0))
                recent[r.slo.ttft_s] = (
                    prompt + r.prompt_tokens,
                    kv + r.prompt_tokens + r.output_bound,
                )
    ordered.sort()
    points: list[QueuePoint] = []
    cum_prefill, cum_kv, taken = first_prefill, first_kv, 0
    for i in _sample(len(ordered)):
        for _, prefill, kv in ordered[taken:i]:
            cum_prefill += prefill
            cum_kv += kv
        taken = i
        points.append(QueuePoint(ordered[i][0], wait(cum_prefill, cum_kv), cum_prefill))
    total_prefill = first_prefill + sum(p for _, p, _ in ordered)
    total_kv = first_kv + sum(k for _, _, k in ordered)
    return EngineSnapshot(
        engine_id=engine_id,
        region=region,
        kv_total_tokens=view.total_blocks * bs,
        kv_free_tokens=free,
        kv_reserved_tokens=reserved,
        waiting=len(view.waiting),
        running=len(view.running),
        waiting_prompt_tokens=total_prefill,
        predicted_queue_delay_s=wait(total_prefill, total_kv),
        kv_drain_tokens_per_s=drain,
        max_batched_tokens=view.max_num_batched_tokens,
        observed_at=view.now if observed_at is None else observed_at,
        queue_by_start=tuple(points),
        arrival_work_by_ttft=_arrival_points(recent, cost, len(view.running), view),
        kv_freed_tokens_per_s=None if freed is None else freed.observe(view),
    )


def _arrival_points(
    recent: dict[float, tuple[int, int]], cost: StepCostModel, running: int, view: EngineView
) -> tuple[ArrivalPoint, ...]:
    """Rates by TTFT target, at most :data:`MAX_QUEUE_POINTS`: beyond that the loosest
    targets are folded into the last point kept (their work counted at a tighter target: a
    wait is overstated, never understated)."""
    targets = sorted(recent)
    kept = [list(recent[t]) for t in targets[:MAX_QUEUE_POINTS]]
    for t in targets[MAX_QUEUE_POINTS:]:
        kept[-1][0] += recent[t][0]
        kept[-1][1] += recent[t][1]
    budget = view.max_num_batched_tokens
    return tuple(
        ArrivalPoint(
            t,
            prefill_time_s(cost, prompt, running, budget) / ARRIVAL_WINDOW_S,
            kv / ARRIVAL_WINDOW_S,
        )
        for t, (prompt, kv) in zip(targets, kept, strict=False)
    )


def _sample(n: int) -> list[int]:
    """Indices of at most :data:`MAX_QUEUE_POINTS` of ``n`` ordered requests: the first (the
    exact wait of a request that goes before all of them), then evenly spaced."""
    if n <= MAX_QUEUE_POINTS:
        return list(range(n))
    return sorted({0, *(k * n // MAX_QUEUE_POINTS for k in range(1, MAX_QUEUE_POINTS))})
