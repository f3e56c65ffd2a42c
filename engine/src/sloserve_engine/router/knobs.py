"""The router knob document: what the operator renders from ``spec.router`` and routers apply live.

Same pattern as the engine's :mod:`sloserve_engine.contract.knobs`: one pydantic model,
camelCase on the wire, every field with a default and a description, unknown
fields rejected with the field named. ``predictorConfidence`` is the engine's
own field declaration, so router and engines estimate KV demand at the same
confidence without a second definition.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from ..contract.knobs import Knobs as EngineKnobs

PlacementName = Literal["random", "least-kv", "p2c", "dynamo", "slo-greedy", "sloserve"]
"""Spelled out rather than imported from :mod:`.placement` (numpy): the operator reads this
document too. ``tests/engine/router/test_router_knobs.py`` keeps the two in step."""

DEFAULT_PLACEMENT: PlacementName = "slo-greedy"
"""The shipped default: the heuristic, because the bandit did not beat it in the cluster
simulator (docs/benchmarks.md, "Router (simulator)")."""


class RouterKnobs(BaseModel):
    """Knobs of one router replica. Every field has a default, so ``{}`` is valid."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    placement: PlacementName = Field(
        default=DEFAULT_PLACEMENT, description="Placement policy that ranks engines."
    )
    admission: bool = Field(
        default=True,
        description="Reject at once (429) requests no engine can serve within their TTFT "
        "target; off: place every request on the best-ranked engine.",
    )
    queue_limit: int = Field(
        default=1024,
        ge=0,
        le=1_000_000,
        description="Requests the router may hold while no engine has KV for them; "
        "beyond it the lowest SLO class is shed (429).",
    )
    queue_timeout_s: float = Field(
        default=5.0,
        gt=0.0,
        le=600.0,
        description="Longest a request is held before it is rejected (it counts as a miss).",
    )
    cold_start_timeout_s: float = Field(
        default=300.0,
        gt=0.0,
        le=3600.0,
        description="Longest a request is held while no engine is live (the service is "
        "scaled to zero and waking, or every engine is restarting: an engine start takes "
        "minutes); then 503 with Retry-After.",
    )
    ttft_margin: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="Share of a request's TTFT target its predicted TTFT must fit in to be "
        "placed (a request whose own prefill alone exceeds it may still go to an engine "
        "with no wait): below 1 sheds long prompts first and cuts the TTFT tail, and "
        "refuses requests a bursty workload would have served in time "
        "(docs/benchmarks.md, 'Router (simulator)').",
    )
    ttft_margin_late_share: float = Field(
        default=0.0,
        ge=0.0,
        le=0.5,
        description="0: the margin is ttftMargin. Above 0: the router adapts its margin "
        "between ttftMargin and 1 from its own placements, up after each first token in "
        "time and down after each late one, so that about this share of placed requests "
        "reach their first token late: bursts the engines clear in time leave it near 1, "
        "sustained overload takes it to ttftMargin (docs/router.md, 'An adaptive margin').",
    )
    kv_wait_reserved: bool = Field(
        default=True,
        description="Price the wait for KV as the engine's promised KV (reserved output "
        "growth of running requests, KV of the requests that start first) plus the "
        "request's prompt against free KV, at the KV the engine measured freed per second "
        "(kvFreedTokensPerS); off: the prompts ahead against free KV at the predicted "
        "drain, which overstates what is freed about 6x (docs/router.md, 'The KV wait').",
    )
    shield: bool = Field(
        default=True,
        description="Reserve every placement through the region shield (SROLE).",
    )
    lease_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3600.0,
        description="Reservation lease: released at first token or completion, or when "
        "the lease expires (a router that died loses nothing forever).",
    )
    max_hops: int = Field(
        default=2,
        ge=0,
        le=8,
        description="Shield alternatives a router follows before it holds the request.",
    )
    top_k: int = Field(
        default=3, ge=1, le=64, description="Feasible engines the learned placement chooses among."
    )
    intervention_penalty: float = Field(
        default=0.5,
        ge=0.0,
        le=10.0,
        description="Reward the learned placement loses per shield refusal of its choice.",
    )
    class_priority: tuple[str, ...] = Field(
        default=("interactive", "standard", "batch"),
        min_length=1,
        max_length=16,
        description="SLO classes, most important first; the full queue sheds from the end "
        "(unknown classes rank last).",
    )
    # The engine's FieldInfo itself (default, bounds, description): one declaration.
    predictor_confidence: float = cast(float, EngineKnobs.model_fields["predictor_confidence"])

    def canonical_json(self) -> str:
        """Stable serialisation: the input of :meth:`revision`."""
        return json.dumps(
            self.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":")
        )

    def revision(self) -> int:
        """Content hash as a 32-bit integer, like the engine knobs': the operator and every
        router agree on it without shared state."""
        return int(hashlib.sha256(self.canonical_json().encode()).hexdigest()[:8], 16)

    @field_validator("class_priority")
    @classmethod
    def _classes_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value) or any(not c for c in value):
            raise ValueError("classPriority must list distinct, non-empty class names")
        return value

    def class_rank(self, slo_class: str) -> int:
        """0 for the most important class; unknown classes rank after every listed one."""
        try:
            return self.class_priority.index(slo_class)
        except ValueError:
            return len(self.class_priority)
