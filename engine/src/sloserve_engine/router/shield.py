"""SROLE's shield for request placement: one per region, reservations granted atomically.

SROLE (arXiv 2206.00774) lets every agent act on its own learned policy and puts
a shield between the agents and the environment. The shield spots *action
collisions* (several agents sending work to one target and overloading it) and
proposes alternative actions. Shields are decentralised, one per region, and
neighbouring shields coordinate at region boundaries.

Here an agent is a router replica, an action is the engine chosen for a
request, and a region is a group of engines. A placement becomes a
:class:`Reservation` only when the engine's region shield grants it. Because a
:class:`RegionShield` is a single-threaded object whose host serialises calls
(one lock or one event loop), check-and-reserve is atomic: two routers that
saw the same stale "least loaded" engine cannot both get it when together they
would overload it. That is the authoritative route-and-reserve Dynamo had to add.

A collision is (:func:`~.placement.judge`, the yardstick every policy is judged by):

- ``kv``: the demand of reservations the engine's snapshot does not show yet,
  plus this request's, exceeds its free KV (plus what drains before the TTFT target);
- ``ttft``: the predicted TTFT, counting those reservations' prefills, breaks the SLO.

A :class:`Refusal` carries the best alternative in the shield's region or, when
there is none, in a neighbouring region (asked through :meth:`RegionShield.propose`).

A reservation is released at the request's first token or completion, or when
its lease expires (a router that died mid-request loses nothing forever).
Exactly once: a request id holds at most one reservation, and an id whose
reservation was released is refused as ``duplicate`` for ``remember_s``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from ..contract.slo import SLO
from ..policy.costmodel import StepCostModel
from .demand import KvDemand
from .placement import EngineState, Pending, PlacementRequest, judge
from .snapshot import EngineSnapshot

RefusalReason = Literal["kv", "ttft", "duplicate", "unknown-engine"]


class Release(StrEnum):
    """Why a reservation ended (each request's reservation ends exactly once)."""

    FIRST_TOKEN = "first_token"
    COMPLETED = "completed"
    FAILED = "failed"
    """The engine answered with an error or the client went away before the first token."""
    EXPIRED = "expired"
    ENGINE_GONE = "engine_gone"


@dataclass(frozen=True, slots=True)
class Reservation:
    """A granted placement: ``demand`` KV tokens of ``engine_id`` until ``expires_at``."""

    request_id: str
    engine_id: str
    region: str
    prompt_tokens: int
    demand_tokens: int
    granted_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused placement and the shield's alternative (``None``: nowhere it can see)."""

    request_id: str
    engine_id: str
    reason: RefusalReason
    alternative: str | None = None
    alternative_region: str | None = None


class RegionShield:
    """The shield of one region; not thread-safe by design (the host serialises calls)."""

    def __init__(
        self,
        region: str,
        cost: StepCostModel,
        lease_s: float = 30.0,
        remember_s: float = 600.0,
    ) -> None:
        if lease_s <= 0 or remember_s < lease_s:
            raise ValueError("lease_s must be > 0 and remember_s >= lease_s")
        self.region = region
        self.cost = cost
        self.lease_s = lease_s
        self.remember_s = remember_s
        self._snapshots: dict[str, EngineSnapshot] = {}
        self._active: dict[str, Reservation] = {}
        self._by_engine: dict[str, dict[str, Reservation]] = {}
        self._settled: OrderedDict[str, float] = OrderedDict()
        self._neighbours: list[RegionShield] = []
        self.grants = 0
        self.refusals = 0

    # ------------------------------------------------------------------ topology and state

    def connect(self, other: RegionShield) -> None:
        """Make two regions neighbours (symmetric): refusals may point across the boundary."""
        if other is self:
            raise ValueError("a region is not its own neighbour")
        if other not in self._neighbours:
            self._neighbours.append(other)
            other._neighbours.append(self)

    def observe(self, snapshot: EngineSnapshot) -> None:
        """Take an engine's newer snapshot (older ones are ignored; reordering is harmless)."""
        if snapshot.region != self.region:
            raise ValueError(
                f"engine {snapshot.engine_id!r} is in region {snapshot.region!r}, "
                f"not {self.region!r}"
            )
        old = self._snapshots.get(snapshot.engine_id)
        if old is None or snapshot.observed_at >= old.observed_at:
            self._snapshots[snapshot.engine_id] = snapshot
            self._by_engine.setdefault(snapshot.engine_id, {})

    def forget_engine(self, engine_id: str, now: float) -> list[Reservation]:
        """An engine died or left: drop it and end its reservations (``engine_gone``)."""
        self._snapshots.pop(engine_id, None)
        gone = list(self._by_engine.pop(engine_id, {}).values())
        for r in gone:
            del self._active[r.request_id]
            self._settle(r.request_id, now)
        return gone

    @property
    def engines(self) -> tuple[str, ...]:
        return tuple(self._snapshots)

    @property
    def active(self) -> dict[str, Reservation]:
        """Reservations in force (a copy)."""
        return dict(self._active)

    def state(self, engine_id: str) -> EngineState:
        """The engine as the shield sees it: its snapshot plus reservations it does not show."""
        snap = self._snapshots[engine_id]
        requests = prompt = demand = 0
        for r in self._by_engine.get(engine_id, {}).values():
            if r.granted_at > snap.observed_at:  # placed after the snapshot was taken
                requests += 1
                prompt += r.prompt_tokens
                demand += r.demand_tokens
        return EngineState(snap, Pending(requests, prompt, demand))

    # ------------------------------------------------------------------ decisions

    def reserve(
        self,
        request_id: str,
        engine_id: str,
        demand: KvDemand,
        slo: SLO,
        now: float,
        waited_s: float = 0.0,
        *,
        force: bool = False,
    ) -> Reservation | Refusal:
        """Grant ``engine_id`` to the request, or refuse with an alternative.

        ``force`` grants without the collision test (admission off: the router places
        anyway) but still enforces exactly-once.
        """
        if request_id in self._active or request_id in self._settled:
            self.refusals += 1
            return Refusal(request_id, engine_id, "duplicate")
        if engine_id not in self._snapshots:
            self.refusals += 1
            return self._refuse(request_id, engine_id, "unknown-engine", demand, slo, now, waited_s)
        if not force:
            cand = judge(
                self.state(engine_id),
                PlacementRequest(request_id, demand, slo, waited_s, now),
                self.cost,
            )
            if not cand.feasible:
                self.refusals += 1
                reason: RefusalReason = "kv" if not cand.kv_ok else "ttft"
                return self._refuse(request_id, engine_id, reason, demand, slo, now, waited_s)
        res = Reservation(
            request_id,
            engine_id,
            self.region,
            demand.prompt_tokens,
            demand.total_tokens,
            now,
            now + self.lease_s,
        )
        self._active[request_id] = res
        self._by_engine[engine_id][request_id] = res
        self.grants += 1
        return res

    def _refuse(
        self,
        request_id: str,
        engine_id: str,
        reason: RefusalReason,
        demand: KvDemand,
        slo: SLO,
        now: float,
        waited_s: float,
    ) -> Refusal:
        alt = self.propose(demand, slo, now, waited_s, exclude=(engine_id,))
        if alt is not None:
            return Refusal(request_id, engine_id, reason, alt, self.region)
        for neighbour in self._neighbours:
            alt = neighbour.propose(demand, slo, now, waited_s, exclude=(engine_id,))
            if alt is not None:
                return Refusal(request_id, engine_id, reason, alt, neighbour.region)
        return Refusal(request_id, engine_id, reason)

    def propose(
        self,
        demand: KvDemand,
        slo: SLO,
        now: float,
        waited_s: float = 0.0,
        exclude: Iterable[str] = (),
    ) -> str | None:
        """The feasible engine of this region with the shortest predicted TTFT (no grant)."""
        skip = set(exclude)
        request = PlacementRequest("", demand, slo, waited_s, now)
        best: tuple[float, str] | None = None
        for engine_id in self._snapshots:
            if engine_id in skip:
                continue
            cand = judge(self.state(engine_id), request, self.cost)
            if cand.feasible and (best is None or cand.predicted_ttft_s < best[0]):
                best = (cand.predicted_ttft_s, engine_id)
        return None if best is None else best[1]

    # ------------------------------------------------------------------ endings

    def release(self, request_id: str, why: Release, now: float) -> Reservation | None:
        """End the request's reservation; ``None`` if it holds none (already released)."""
        res = self._active.pop(request_id, None)
        if res is None:
            return None
        self._by_engine.get(res.engine_id, {}).pop(request_id, None)
        self._settle(request_id, now)
        return res

    def expire(self, now: float) -> list[Reservation]:
        """End every reservation whose lease ran out (its router never reported back)."""
        gone = [r for r in self._active.values() if r.expires_at <= now]
        for r in gone:
            self.release(r.request_id, Release.EXPIRED, now)
        while self._settled:
            rid, t = next(iter(self._settled.items()))
            if t + self.remember_s > now:
                break
            del self._settled[rid]
        return gone

    def _settle(self, request_id: str, now: float) -> None:
        self._settled[request_id] = now
        self._settled.move_to_end(request_id)
