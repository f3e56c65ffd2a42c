"""One router replica's decision state machine (pure: the caller supplies ``now`` and does I/O).

The HTTP router and the cluster simulator drive the same object:

1. :meth:`RouterCore.observe` every engine snapshot it polls;
2. :meth:`RouterCore.submit` each arriving request: the answer is PLACE (on an
   engine: reserve it at that engine's region shield, or send it straight away
   when shields are off), HOLD (queued here) or REJECT (429/503);
3. after a reservation attempt, :meth:`RouterCore.granted` or
   :meth:`RouterCore.refused` (which follows the shield's alternative, up to
   ``maxHops``, then holds or rejects);
4. :meth:`RouterCore.poll` on a timer: held requests are judged again on
   fresher state, and those past ``queueTimeoutS`` are rejected;
5. :meth:`RouterCore.first_token` / :meth:`RouterCore.finished` /
   :meth:`RouterCore.failed` when the engine answers; finishing feeds the
   demand predictor and the learned placement.

Every request ends in exactly one of: finished, failed, rejected; the core
raises on a second ending so a host bug cannot double-count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from ..contract.slo import SLO
from ..policy.costmodel import StepCostModel
from .admission import Action, Decision, Reason, ServiceQueue, decide
from .demand import DemandEstimator, KvDemand
from .knobs import RouterKnobs
from .margin import AdaptiveMargin
from .placement import EngineState, Pending, PlacementRequest, make_placement
from .shield import Refusal, RegionShield, Reservation
from .snapshot import EngineSnapshot


class Phase(StrEnum):
    DECIDING = "deciding"
    HELD = "held"
    PLACED = "placed"
    STREAMING = "streaming"


@dataclass(slots=True)
class _Request:
    request_id: str
    demand: KvDemand
    slo: SLO
    arrival: float
    rank: int
    phase: Phase = Phase.DECIDING
    engine_id: str | None = None
    hops: int = 0
    refusals: int = 0
    cold: bool = False
    """Held while no engine existed: placed on the first engine that appears, whatever its
    predicted TTFT (the wait already spent it), until ``coldStartTimeoutS``."""
    held_since: float | None = None
    """When the request was first held: ``queueTimeoutS`` counts from here, also when a
    placement from the queue is refused by a shield and the request is held again."""


class RouterCore:
    """Decision state of one router replica (not thread-safe: the host serialises calls)."""

    def __init__(
        self,
        knobs: RouterKnobs,
        cost: StepCostModel,
        max_model_len: int,
        seed: int = 0,
    ) -> None:
        self.cost = cost
        self.seed = seed
        self.demand = DemandEstimator(max_model_len)
        self._snapshots: dict[str, EngineSnapshot] = {}
        self._pending: dict[str, list[tuple[float, KvDemand]]] = {}
        self._requests: dict[str, _Request] = {}
        self.knobs = knobs
        self.placement = make_placement(knobs.placement, cost, seed, knobs.top_k)
        self.queue = ServiceQueue(knobs.queue_limit, knobs.queue_timeout_s)
        self.margin = AdaptiveMargin(knobs.ttft_margin, knobs.ttft_margin_late_share)
        self._shed: list[str] = []
        self.hold_without_engines = False
        """Set by a host whose engines come and go (the HTTP router: scale to zero, restarts,
        discovery lag): with no engine to place on, requests are held for the first one
        (``coldStartTimeoutS``) instead of answered 503 at once. The cluster simulator's
        engines never leave, so it keeps the default."""
        self.outcomes: dict[str, int] = {}
        """Count of each ending (``finished``, ``failed``, ``rejected:<reason>``)."""

    # ------------------------------------------------------------------ configuration and state

    def set_knobs(self, knobs: RouterKnobs) -> None:
        """Apply new knobs live; a new placement policy starts learning afresh."""
        if knobs.placement != self.knobs.placement or knobs.top_k != self.knobs.top_k:
            self.placement = make_placement(knobs.placement, self.cost, self.seed, knobs.top_k)
        self.queue.limit = knobs.queue_limit
        self.queue.timeout_s = knobs.queue_timeout_s
        self.margin.configure(knobs.ttft_margin, knobs.ttft_margin_late_share)
        self.knobs = knobs

    def observe(self, snapshot: EngineSnapshot) -> None:
        """A polled snapshot; placements it already shows leave this router's pending ledger."""
        old = self._snapshots.get(snapshot.engine_id)
        if old is not None and snapshot.observed_at < old.observed_at:
            return
        self._snapshots[snapshot.engine_id] = snapshot
        ledger = self._pending.get(snapshot.engine_id)
        if ledger:
            self._pending[snapshot.engine_id] = [
                (t, d) for t, d in ledger if t > snapshot.observed_at
            ]

    def forget(self, engine_id: str) -> None:
        """An engine is unreachable: it leaves placement at once."""
        self._snapshots.pop(engine_id, None)
        self._pending.pop(engine_id, None)

    def region_of(self, engine_id: str) -> str:
        return self._snapshots[engine_id].region

    def states(self) -> list[EngineState]:
        out = []
        for engine_id, snap in self._snapshots.items():
            pending = Pending()
            for _, d in self._pending.get(engine_id, ()):
                pending = pending.plus(d)
            out.append(EngineState(snap, pending))
        return out

    def held(self) -> int:
        return len(self.queue)

    def placing(self, request_id: str) -> tuple[KvDemand, SLO, float]:
        """Demand, SLO and arrival time of a request in flight (what a shield needs)."""
        req = self._requests[request_id]
        return req.demand, req.slo, req.arrival

    def forced(self, request_id: str) -> bool:
        """Whether a shield should grant this placement without its collision test: admission
        is off, or the request waited for an engine to exist (a cold start already spent its
        TTFT budget; the first engine takes it, as :meth:`_decide` places it)."""
        return not self.knobs.admission or self._requests[request_id].cold

    def take_shed(self) -> list[str]:
        """Held requests evicted by more important ones since the last call (answer 429)."""
        shed, self._shed = self._shed, []
        return shed

    def interventions(self, request_id: str) -> int:
        """Shield refusals this request met so far."""
        return self._requests[request_id].refusals

    # ------------------------------------------------------------------ decisions

    def submit(
        self,
        request_id: str,
        prompt_tokens: int,
        slo: SLO,
        now: float,
        max_tokens: int | None = None,
    ) -> Decision:
        """A new request: place it, hold it, or reject it."""
        if request_id in self._requests:
            raise ValueError(f"request {request_id!r} is already in flight")
        demand = self.demand.demand(prompt_tokens, slo, self.knobs.predictor_confidence, max_tokens)
        req = _Request(request_id, demand, slo, now, self.knobs.class_rank(slo.slo_class))
        self._requests[request_id] = req
        self.margin.overdue(now)
        return self._decide(req, now)

    def placement_request(self, request_id: str, now: float) -> PlacementRequest:
        """A request in flight as this router judges it: its wait so far, the margin in force
        and the ``kvWaitReserved`` knob (one place, for the first choice and alternatives)."""
        req = self._requests[request_id]
        return PlacementRequest(
            req.request_id,
            req.demand,
            req.slo,
            now - req.arrival,
            now,
            self.margin.margin,
            self.knobs.kv_wait_reserved,
        )

    def _decide(self, req: _Request, now: float) -> Decision:
        waited = now - req.arrival
        request = self.placement_request(req.request_id, now)
        candidates = self.placement.rank(request, self.states())
        held = req.phase is Phase.HELD
        room = held or self.queue.has_room(req.rank)
        admission = self.knobs.admission and not req.cold
        waking = self.hold_without_engines or req.cold
        decision = decide(candidates, req.slo.ttft_s - waited, admission, room, waking)
        return self._apply(req, decision, now)

    def _apply(self, req: _Request, decision: Decision, now: float) -> Decision:
        if decision.action is Action.PLACE:
            if req.phase is Phase.HELD:
                self.queue.remove(req.request_id)
            req.phase = Phase.DECIDING
            req.engine_id = decision.engine_id
            return decision
        if decision.action is Action.HOLD:
            if req.phase is not Phase.HELD:
                req.cold = decision.reason is Reason.COLD_START
                timeout = self.knobs.cold_start_timeout_s if req.cold else None
                if not req.cold and req.held_since is None:
                    req.held_since = now
                start = now if req.cold else req.held_since
                assert start is not None
                shed = self.queue.push(req.request_id, req.rank, start, timeout)
                req.phase = Phase.HELD
                if shed is not None:
                    self._end(shed, f"rejected:{Reason.SHED}")
                    self._shed.append(shed)
            return decision
        self.queue.remove(req.request_id)
        assert decision.reason is not None
        self._end(req.request_id, f"rejected:{decision.reason}")
        return decision

    def granted(self, request_id: str, engine_id: str, now: float, streamed: bool = True) -> None:
        """The placement on ``engine_id`` stands (shield granted it, or shields are off).
        ``streamed``: the host will see its first token (an HTTP router does not for a
        non-streamed answer), so the placement can teach an adaptive margin."""
        req = self._requests[request_id]
        if req.phase is not Phase.DECIDING:
            raise ValueError(f"request {request_id!r} is {req.phase}, not being placed")
        req.phase = Phase.PLACED
        req.engine_id = engine_id
        self._pending.setdefault(engine_id, []).append((now, req.demand))
        if streamed:
            self.margin.placed(request_id, req.arrival + req.slo.ttft_s)

    def refused(self, refusal: Refusal, now: float) -> Decision:
        """The shield refused; follow its alternative while hops remain, else hold or reject."""
        req = self._requests[refusal.request_id]
        req.refusals += 1
        if refusal.reason == "duplicate":
            raise ValueError(f"request {refusal.request_id!r} was already placed (shield)")
        if (
            refusal.alternative is not None
            and req.hops < self.knobs.max_hops
            and refusal.alternative in self._snapshots
        ):
            req.hops += 1
            req.engine_id = refusal.alternative
            return Decision(Action.PLACE, refusal.alternative)
        waited = now - req.arrival
        if waited >= req.slo.ttft_s:
            return self._apply(
                req, Decision(Action.REJECT, reason=Reason.SLO_INFEASIBLE, retry_after_s=1.0), now
            )
        if req.phase is Phase.HELD or self.queue.has_room(req.rank):
            return self._apply(req, Decision(Action.HOLD, reason=Reason.KV_WAIT), now)
        return self._apply(
            req, Decision(Action.REJECT, reason=Reason.QUEUE_FULL, retry_after_s=1.0), now
        )

    def poll(self, now: float) -> list[tuple[str, Decision]]:
        """Judge held requests again (most important first); reject those timed out."""
        out: list[tuple[str, Decision]] = []
        self.margin.overdue(now)
        for rid in self.queue.expired(now):
            reason = Reason.COLD_START if self._requests[rid].cold else Reason.TIMEOUT
            self._end(rid, f"rejected:{reason}")
            out.append((rid, Decision(Action.REJECT, reason=reason, retry_after_s=1.0)))
        for rid in self.queue.in_order():
            req = self._requests[rid]
            req.hops = 0
            decision = self._decide(req, now)
            if decision.action is not Action.HOLD:
                out.append((rid, decision))
        return out

    def drain(self) -> list[tuple[str, Decision]]:
        """The router is stopping: every held request is rejected now (``shutdown``), so its
        client can retry at another replica instead of waiting out the shutdown grace."""
        out = []
        for rid in self.queue.in_order():
            self.queue.remove(rid)
            self._end(rid, f"rejected:{Reason.SHUTDOWN}")
            out.append((rid, Decision(Action.REJECT, reason=Reason.SHUTDOWN, retry_after_s=1.0)))
        return out

    # ------------------------------------------------------------------ endings

    def first_token(self, request_id: str, now: float) -> None:
        req = self._requests.get(request_id)
        if req is not None and req.phase is Phase.PLACED:
            req.phase = Phase.STREAMING
            self.margin.first_token(request_id, now)

    def finished(self, request_id: str, output_tokens: int, met_slo: bool, now: float) -> None:
        """The engine finished the request; learn from it."""
        req = self._requests[request_id]
        self.demand.observe(request_id, req.demand, output_tokens, req.slo, now)
        self._feedback(req, 1.0 if met_slo else 0.0)
        self._end(request_id, "finished")

    def failed(self, request_id: str, now: float) -> None:
        """The engine errored, the client went away, or the engine died."""
        req = self._requests.get(request_id)
        if req is None:
            raise ValueError(f"request {request_id!r} already has an outcome")
        self.queue.remove(request_id)
        self._feedback(req, 0.0)
        self._end(request_id, "failed")

    def _feedback(self, req: _Request, reward: float) -> None:
        self.placement.feedback(
            req.request_id, reward - self.knobs.intervention_penalty * req.refusals
        )

    def _end(self, request_id: str, outcome: str) -> None:
        if self._requests.pop(request_id, None) is None:
            raise ValueError(f"request {request_id!r} already has an outcome")
        self.margin.forget(request_id)
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def place_through_shields(
    core: RouterCore,
    shields: Mapping[str, RegionShield],
    request_id: str,
    decision: Decision,
    now: float,
) -> tuple[Decision, Reservation | None]:
    """Drive one PLACE decision through the region shields until granted, held or rejected.

    For hosts whose shields are in-process (the cluster simulator, a router holding
    the region's Lease); remote shields run the same loop over HTTP.
    """
    while decision.action is Action.PLACE:
        assert decision.engine_id is not None
        demand, slo, arrival = core.placing(request_id)
        shield = shields[core.region_of(decision.engine_id)]
        answer = shield.reserve(
            request_id,
            decision.engine_id,
            demand,
            slo,
            now,
            now - arrival,
            force=core.forced(request_id),
        )
        if isinstance(answer, Reservation):
            core.granted(request_id, answer.engine_id, now)
            return decision, answer
        decision = core.refused(answer, now)
    return decision, None
