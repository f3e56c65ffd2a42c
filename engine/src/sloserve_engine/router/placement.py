"""Placement policies: rank the engines for one request, best first.

Every policy implements :class:`PlacementPolicy` and returns all engines as
:class:`Candidate` objects with the same predicted TTFT and KV fit, so that
admission and the shield judge every policy's choice by one yardstick; only
the order differs:

- ``random``: what kube-proxy gives a plain Service;
- ``least-kv``: lowest KV usage in the scraped state (llm-d's KV-utilisation scorer);
- ``p2c``: two engines at random, the less loaded first (Mitzenmacher: robust to stale state);
- ``dynamo``: Dynamo's KV-router cost without the prefix credit: queued prefill blocks
  plus the request's own prefill blocks plus active decode blocks, with this router's
  own placements since the last snapshot counted (Dynamo's ``ActiveSequences``);
- ``slo-greedy``: engines that can meet the SLO first (predicted TTFT and KV fit),
  then by predicted TTFT;
- ``sloserve``: the same feasibility filter, then a LinUCB contextual bandit over the
  top-k feasible engines (reward: SLO met minus a penalty per shield intervention).

Predicted TTFT (:func:`predict_ttft`) = the engine's published queue delay ahead of the
request (by its latest start in the engine's order, so a tight-SLO request is not charged for
loose-SLO work the engine lets it pass; the class-blind total from engines that publish no
order), stretched by the work arriving meanwhile that passes it (tighter TTFT targets, from
the engine's recent arrivals), plus the prefill of what this router (or the shield) placed
there since that snapshot and of the request itself, or the wait for KV when the prompts do
not fit (also stretched by passing arrivals), whichever is later. With the
``kvWaitReserved`` knob the KV wait counts what the engine promised ahead of the request at
the KV it measured freed (:func:`kv_wait`).
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..contract.slo import SLO
from ..policy.costmodel import StepCostModel
from .demand import KvDemand
from .snapshot import (
    EngineSnapshot,
    kv_wait_s,
    prefill_time_s,
    reserved_kv_wait_s,
    wait_with_passing,
)

PLACEMENT_NAMES = ("random", "least-kv", "p2c", "dynamo", "slo-greedy", "sloserve")
"""Placement policies in the order benchmarks compare them."""


@dataclass(frozen=True, slots=True)
class Pending:
    """Placements on one engine that its snapshot does not show yet."""

    requests: int = 0
    prompt_tokens: int = 0
    demand_tokens: int = 0

    def plus(self, demand: KvDemand) -> Pending:
        return Pending(
            self.requests + 1,
            self.prompt_tokens + demand.prompt_tokens,
            self.demand_tokens + demand.total_tokens,
        )


NO_PENDING = Pending()


@dataclass(frozen=True, slots=True)
class EngineState:
    """An engine as one placer sees it: a (possibly stale) snapshot plus its own pending."""

    snapshot: EngineSnapshot
    pending: Pending = NO_PENDING

    @property
    def engine_id(self) -> str:
        return self.snapshot.engine_id


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """One request to place.

    The defaults of ``ttft_margin`` (1.0) and ``kv_wait_reserved`` (False) are the shields'
    judgement: engines hold no router knobs, and a shield refuses only what is infeasible at
    the full target with the published drain. Routers pass their knobs through
    ``RouterCore.placement_request``.
    """

    request_id: str
    demand: KvDemand
    slo: SLO
    waited_s: float = 0.0
    """Time already spent since arrival (in the router's queue); counts against the TTFT."""
    now: float = 0.0
    ttft_margin: float = 1.0
    """Share of the TTFT target a placement's predicted TTFT must fit in (the ``ttftMargin``
    knob; see :func:`judge`): below 1 leaves room for prediction error before the engine
    deprioritises a late request, and sheds long prompts first under load."""
    kv_wait_reserved: bool = False
    """The ``kvWaitReserved`` knob: price the KV wait with :func:`kv_wait` (promised KV at the
    measured freed rate)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One engine, judged for one request."""

    engine_id: str
    predicted_ttft_s: float
    """Predicted time from now to the first token on this engine."""
    ttft_ok: bool
    """``waited + predicted TTFT <= SLO TTFT`` and the predicted wait (TTFT minus the own
    prefill) ``<= max(ttft_margin × (SLO TTFT − waited) − own prefill, 0)``."""
    kv_ok: bool
    """Pending plus this demand fit in the headroom plus what drains before the TTFT target."""

    @property
    def feasible(self) -> bool:
        return self.ttft_ok and self.kv_ok


def predict_ttft(
    state: EngineState,
    demand: KvDemand,
    cost: StepCostModel,
    start_by_s: float = math.inf,
    ttft_s: float = 0.0,
    reserved: bool = False,
) -> float:
    """Predicted seconds from now to this request's first token on ``state``'s engine.

    ``start_by_s``: when the request must start, counted from the snapshot
    (:func:`start_by`); it waits behind what the engine runs before it
    (:meth:`EngineSnapshot.queue_ahead`). The default waits behind everything queued.
    ``ttft_s``: the request's TTFT target; work arriving meanwhile with a tighter target
    passes it (:func:`wait_with_passing`). The default: nothing passes.
    ``reserved``: the KV wait counts promised KV at the measured freed rate (:func:`kv_wait`).
    """
    s = state.snapshot
    p = state.pending
    running = s.running + p.requests
    prefill = prefill_time_s(
        cost, p.prompt_tokens + demand.prompt_tokens, running, s.max_batched_tokens
    )
    ahead_s, ahead_tokens = s.queue_ahead(start_by_s)
    arrivals = s.arrival_work_by_ttft
    ahead_s = wait_with_passing(ahead_s, start_by_s, ttft_s, ((a[0], a[1]) for a in arrivals))
    queued = ahead_s + prefill
    kv_s, drain = kv_wait(state, demand, ahead_tokens, reserved)
    if arrivals and drain > 0:  # passing arrivals take KV that drains first
        kv_s = wait_with_passing(kv_s, start_by_s, ttft_s, ((a[0], a[2] / drain) for a in arrivals))
    kv = kv_s + prefill
    return max(queued, kv)


def kv_wait(
    state: EngineState, demand: KvDemand, ahead_tokens: int, reserved: bool
) -> tuple[float, float]:
    """(Seconds until the request's prompt fits in KV, the drain rate that wait assumes).

    ``ahead_tokens``: prefill tokens queued ahead of it (:meth:`EngineSnapshot.queue_ahead`).
    Not ``reserved``, or an engine that publishes no measured rate: those prompts, the pending
    prompts and its own against free KV, at the predicted drain. ``reserved``: the share of
    everything the engine promised (``kvReservedTokens``: reserved output growth of running
    requests, prompts and output bounds of waiting ones) that the prefill queued ahead of the
    request is of all queued prefill, plus the pending demand and its own prompt, against free
    KV, at the KV the engine measured freed (:func:`reserved_kv_wait_s`). The snapshot does
    not say which promises belong to the requests ahead, so they are attributed in proportion
    to the queue ahead: a request behind everything counts all of them, one at the front none.
    """
    s = state.snapshot
    p = state.pending
    measured = s.kv_freed_tokens_per_s
    if not reserved or measured is None:
        deficit = ahead_tokens + p.prompt_tokens + demand.prompt_tokens - s.kv_free_tokens
        return kv_wait_s(deficit, s.kv_drain_tokens_per_s), s.kv_drain_tokens_per_s
    share = min(ahead_tokens / max(s.waiting_prompt_tokens, 1), 1.0)
    promised = int(s.kv_reserved_tokens * share)
    need = p.demand_tokens + demand.prompt_tokens
    return reserved_kv_wait_s(s.kv_free_tokens, promised, need, measured), measured


def start_by(state: EngineState, request: PlacementRequest, cost: StepCostModel) -> float:
    """The request's latest start, in seconds after ``state``'s snapshot, as the engine's
    ``slack`` order computes it (:func:`sloserve_engine.policy.slack.latest_start`): what
    is left of its TTFT target minus its own prefill, plus the snapshot's age."""
    s = state.snapshot
    left = request.slo.ttft_s - request.waited_s
    return s.age_s(request.now) + left - cost.prefill_s(request.demand.prompt_tokens)


def kv_fits(state: EngineState, demand: KvDemand, horizon_s: float) -> bool:
    """SROLE's KV collision test: do pending + this demand fit what is free by ``horizon_s``?"""
    s = state.snapshot
    room = s.kv_headroom_tokens + s.kv_drain_tokens_per_s * max(horizon_s, 0.0)
    return state.pending.demand_tokens + demand.total_tokens <= room


def own_prefill_s(state: EngineState, demand: KvDemand, cost: StepCostModel) -> float:
    """The request's own prefill on ``state``'s engine: the part of its TTFT that is known."""
    s = state.snapshot
    running = s.running + state.pending.requests
    return prefill_time_s(cost, demand.prompt_tokens, running, s.max_batched_tokens)


def judge(state: EngineState, request: PlacementRequest, cost: StepCostModel) -> Candidate:
    """The one yardstick: predicted TTFT against the SLO and the KV collision test.

    ``ttftMargin``: the predicted TTFT must fit in that share of the budget, so under load a
    request whose own prefill takes more of it (a long prompt) needs a shorter wait, and the
    expensive requests are refused first. A request whose own prefill alone exceeds the share
    may still go to an engine where it waits for nothing: a margin never refuses what an idle
    engine serves in time, whatever the prompt length or SLO class.
    """
    ttft = predict_ttft(
        state,
        request.demand,
        cost,
        start_by(state, request, cost),
        request.slo.ttft_s,
        request.kv_wait_reserved,
    )
    budget = request.slo.ttft_s - request.waited_s
    own = own_prefill_s(state, request.demand, cost)
    allowed_wait = max(request.ttft_margin * budget - own, 0.0)
    return Candidate(
        state.engine_id,
        ttft,
        ttft <= budget and ttft - own <= allowed_wait,
        kv_fits(state, request.demand, allowed_wait + own),
    )


class PlacementPolicy(Protocol):
    """Ranks engines; stateful only where it learns (the bandit)."""

    name: str

    def rank(self, request: PlacementRequest, engines: Sequence[EngineState]) -> list[Candidate]:
        """All engines, best first."""
        ...

    def feedback(self, request_id: str, reward: float) -> None:
        """Outcome of a placement this policy ranked (ignored by heuristics)."""
        ...


class _Heuristic:
    """Shared plumbing: judge every engine, order by :meth:`key` with random tie-breaks."""

    name = "heuristic"

    def __init__(self, cost: StepCostModel, seed: int = 0) -> None:
        self.cost = cost
        self.rng = random.Random(seed)

    def key(self, state: EngineState, cand: Candidate, request: PlacementRequest) -> float:
        raise NotImplementedError

    def rank(self, request: PlacementRequest, engines: Sequence[EngineState]) -> list[Candidate]:
        judged = [(s, judge(s, request, self.cost)) for s in engines]
        self.rng.shuffle(judged)  # ties go to a random engine, not always the first
        judged.sort(key=lambda sc: self.key(sc[0], sc[1], request))
        return [c for _, c in judged]

    def feedback(self, request_id: str, reward: float) -> None:
        return None


class RandomPlacement(_Heuristic):
    name = "random"

    def key(self, state: EngineState, cand: Candidate, request: PlacementRequest) -> float:
        return 0.0


class LeastKvPlacement(_Heuristic):
    """Scraped KV usage only, as a metrics-based scorer has it (no own bookkeeping)."""

    name = "least-kv"

    def key(self, state: EngineState, cand: Candidate, request: PlacementRequest) -> float:
        return state.snapshot.kv_usage


class PowerOfTwoPlacement(_Heuristic):
    """Two random engines, the lower KV usage (then fewer waiting) first; the rest random."""

    name = "p2c"

    def rank(self, request: PlacementRequest, engines: Sequence[EngineState]) -> list[Candidate]:
        judged = [(s, judge(s, request, self.cost)) for s in engines]
        self.rng.shuffle(judged)
        head = sorted(judged[:2], key=lambda sc: (sc[0].snapshot.kv_usage, sc[0].snapshot.waiting))
        return [c for _, c in head + judged[2:]]


class DynamoCostPlacement(_Heuristic):
    """``cost = overlap_weight · prefill blocks + decode blocks`` with no prefix overlap."""

    name = "dynamo"
    overlap_weight = 1.0

    def key(self, state: EngineState, cand: Candidate, request: PlacementRequest) -> float:
        s = state.snapshot
        prefill = s.waiting_prompt_tokens + state.pending.prompt_tokens
        prefill += request.demand.prompt_tokens
        decode = s.kv_total_tokens - s.kv_free_tokens + state.pending.prompt_tokens
        return self.overlap_weight * prefill + decode


class SloGreedyPlacement(_Heuristic):
    """Feasible engines first, then the shortest predicted TTFT."""

    name = "slo-greedy"

    def key(self, state: EngineState, cand: Candidate, request: PlacementRequest) -> float:
        return (0.0 if cand.feasible else 1e6) + min(cand.predicted_ttft_s, 1e5)


N_FEATURES = 6


def features(state: EngineState, cand: Candidate, request: PlacementRequest) -> np.ndarray:
    """Bandit context of one (request, engine) pair, each roughly in [0, 1]."""
    s = state.snapshot
    slo = max(request.slo.ttft_s, 1e-3)
    return np.array(
        [
            1.0,
            min(cand.predicted_ttft_s / slo, 2.0),
            s.kv_usage,
            min(state.pending.demand_tokens / max(s.kv_total_tokens, 1), 1.0),
            min(s.age_s(request.now) / slo, 2.0),
            min(request.demand.total_tokens / max(s.kv_total_tokens, 1) * 10.0, 1.0),
        ]
    )


class BanditPlacement(_Heuristic):
    """SLO-feasibility filter, then LinUCB over the top-k feasible engines that are near-equals.

    One linear reward model shared across engines (engines are interchangeable
    replicas; what differs is their context). The chosen engine leads the
    ranking; the rest follow in greedy order so a shield refusal falls back sensibly.
    """

    name = "sloserve"

    def __init__(
        self,
        cost: StepCostModel,
        seed: int = 0,
        top_k: int = 3,
        alpha: float = 0.3,
        slack: float = 0.2,
        max_outstanding: int = 100_000,
    ) -> None:
        super().__init__(cost, seed)
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        self.top_k = top_k
        self.alpha = alpha
        self.slack = slack
        """Largest predicted-TTFT gap to the best engine, as a share of the TTFT target."""
        self.max_outstanding = max_outstanding
        self.a_inv = np.eye(N_FEATURES)
        self.b = np.zeros(N_FEATURES)
        self._chosen: OrderedDict[str, np.ndarray] = OrderedDict()
        self.updates = 0

    def key(self, state: EngineState, cand: Candidate, request: PlacementRequest) -> float:
        return (0.0 if cand.feasible else 1e6) + min(cand.predicted_ttft_s, 1e5)

    def rank(self, request: PlacementRequest, engines: Sequence[EngineState]) -> list[Candidate]:
        judged = [(s, judge(s, request, self.cost)) for s in engines]
        self.rng.shuffle(judged)
        judged.sort(key=lambda sc: self.key(sc[0], sc[1], request))
        # Choose only among near-equals: feasible and within ``slack`` of the best TTFT,
        # so exploration never trades a sure SLO for information.
        best = judged[0][1].predicted_ttft_s if judged else 0.0
        limit = best + self.slack * request.slo.ttft_s
        top = [
            sc for sc in judged[: self.top_k] if sc[1].feasible and sc[1].predicted_ttft_s <= limit
        ]
        if len(top) >= 2:
            theta = self.a_inv @ self.b
            best_i, best_u, best_x = 0, -math.inf, None
            for i, (s, c) in enumerate(top):
                x = features(s, c, request)
                u = float(theta @ x) + self.alpha * math.sqrt(float(x @ self.a_inv @ x))
                if u > best_u:
                    best_i, best_u, best_x = i, u, x
            assert best_x is not None
            judged.insert(0, judged.pop(best_i))
            self._remember(request.request_id, best_x)
        elif top:
            self._remember(request.request_id, features(top[0][0], top[0][1], request))
        return [c for _, c in judged]

    def _remember(self, request_id: str, x: np.ndarray) -> None:
        self._chosen[request_id] = x
        while len(self._chosen) > self.max_outstanding:
            self._chosen.popitem(last=False)  # outcomes never reported: forget the oldest

    def feedback(self, request_id: str, reward: float) -> None:
        x = self._chosen.pop(request_id, None)
        if x is None:
            return
        # Sherman-Morrison update of A^-1 for A += x x^T.
        ax = self.a_inv @ x
        self.a_inv -= np.outer(ax, ax) / (1.0 + float(x @ ax))
        self.b += reward * x
        self.updates += 1


def make_placement(
    name: str, cost: StepCostModel, seed: int = 0, top_k: int = 3
) -> PlacementPolicy:
    """The named placement policy (:data:`PLACEMENT_NAMES`)."""
    policies: dict[str, type[_Heuristic]] = {
        "random": RandomPlacement,
        "least-kv": LeastKvPlacement,
        "p2c": PowerOfTwoPlacement,
        "dynamo": DynamoCostPlacement,
        "slo-greedy": SloGreedyPlacement,
    }
    if name == "sloserve":
        return BanditPlacement(cost, seed, top_k)
    if name not in policies:
        raise ValueError(f"unknown placement {name!r}; choose one of {', '.join(PLACEMENT_NAMES)}")
    return policies[name](cost, seed)
