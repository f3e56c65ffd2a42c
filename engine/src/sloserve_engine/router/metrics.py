"""Every ``sloserve_router_*`` metric, declared once, with bounded label sets.

Outcomes are counted once per request (:class:`Outcome`); the ones the
router or the engine caused a client to lose are also SLO misses with a
reason, so a dashboard that divides finished-and-met by all requests never
reads 100 % while requests are turned away.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Outcome(StrEnum):
    """What became of one request at the router."""

    FINISHED = "finished"
    """Placed and relayed to the end (the engine's own answer, whatever its status)."""
    REJECTED = "rejected"
    """429 at once: admission control or a full queue."""
    TIMED_OUT = "timed_out"
    """429 after waiting in the router's queue for ``queueTimeoutMs``."""
    UNAVAILABLE = "unavailable"
    """503: no engine reachable (or none started within ``coldStartTimeoutS``)."""
    ABORTED = "aborted"
    """The client went away (the engine request was aborted)."""
    ERROR = "error"
    """The engine failed mid-response or could not be reached after placement."""
    INVALID = "invalid"
    """4xx for bad input (not an SLO miss: nothing servable was asked)."""


MISSES = frozenset(
    {Outcome.REJECTED, Outcome.TIMED_OUT, Outcome.UNAVAILABLE, Outcome.ABORTED, Outcome.ERROR}
)
"""Outcomes that count as SLO misses (reason label = the outcome)."""

DECISION_BUCKETS_S = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1,
)  # fmt: skip
QUEUE_WAIT_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ENGINE_STATES = ("live", "stale", "down")


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "sloserve_router_requests_total",
            "Requests by outcome: finished, rejected (429 now), timed_out (429 after queueing), "
            "unavailable (503, no engine), aborted (client left), error (engine failed), "
            "invalid (4xx bad input).",
            ["outcome"],
            registry=registry,
        )
        self.misses = Counter(
            "sloserve_router_slo_misses_total",
            "Requests the router counts as SLO misses without a served answer, by reason "
            "(rejected, timed_out, unavailable, aborted, error).",
            ["reason"],
            registry=registry,
        )
        self.decision = Histogram(
            "sloserve_router_decision_seconds",
            "Router CPU time (thread time) of one placement decision (place, hold or reject, "
            "and each decision after a shield refusal), excluding queue waits and network hops.",
            buckets=DECISION_BUCKETS_S,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "sloserve_router_queue_wait_seconds",
            "Time placed requests waited in the router's queue (seconds).",
            buckets=QUEUE_WAIT_BUCKETS_S,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "sloserve_router_queue_depth",
            "Requests the router holds: waiting for an engine that can meet their SLO, or for "
            "the first engine of a service scaled to zero (the autoscaler's wake signal).",
            registry=registry,
        )
        self.shield_refusals = Counter(
            "sloserve_router_shield_refusals_total",
            "Reservations a shield refused (the placement collided with others' reservations).",
            registry=registry,
        )
        self.state_age = Gauge(
            "sloserve_router_state_age_seconds",
            "Age of the oldest engine state this router places with, among reachable engines.",
            registry=registry,
        )
        self.engines = Gauge(
            "sloserve_router_engines",
            "Engines known to this router by state: live (placeable), stale (state too old), "
            "down (unreachable).",
            ["state"],
            registry=registry,
        )
        self.knobs_revision = Gauge(
            "sloserve_router_knobs_revision",
            "Revision (content hash) of the router knobs document in force.",
            registry=registry,
        )
        self.ttft_margin = Gauge(
            "sloserve_router_ttft_margin",
            "Share of the TTFT target a placement's predicted TTFT must fit in, as this router "
            "judges now: ttftMargin, or with ttftMarginLateShare above 0 the adapted value "
            "between ttftMargin and 1 (low: recent placements went late).",
            registry=registry,
        )
        for state in ENGINE_STATES:
            self.engines.labels(state=state)

        self._counted = {
            outcome: (
                self.requests.labels(outcome=outcome.value),
                self.misses.labels(reason=outcome.value) if outcome in MISSES else None,
            )
            for outcome in Outcome
        }
        """Each outcome's children, bound once (a label lookup per request is measurable)."""

    def outcome(self, outcome: Outcome) -> None:
        """Count one request's outcome (call exactly once per request)."""
        requests, misses = self._counted[outcome]
        requests.inc()
        if misses is not None:
            misses.inc()
