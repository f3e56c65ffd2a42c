"""The live-knob document: what the operator writes and every engine applies between steps.

One pydantic model serves three readers: the engine's admin API (``PUT
/sloserve/knobs`` validates against it), the mounted knobs file pods start
from, and the operator, which renders ``spec.scheduler`` + ``spec.slo`` into it.
Field names are camelCase on the wire to match the ``LLMService`` spec.

The revision is content-addressed (a hash of the canonical document), so the
operator and every engine agree on it without shared state, re-applying the
same spec is a no-op, and GitOps re-syncs never look like changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from .contract.attainment import STALL_BOUND_MS_DEFAULT
from .policy.knobs import POLICY_NAMES, PolicyKnobs
from .policy.views import PreemptionMode, SLOTarget

PolicyName = Literal["vllm", "ecoserve", "cacheopt", "accelgen", "sloserve"]
PreemptionModeName = Literal["auto", "recompute", "swap"]

assert set(PolicyName.__args__) == set(POLICY_NAMES)  # type: ignore[attr-defined]


class _Doc(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


OTHER_SLO_CLASS = "other"
"""The class of every request that names an SLO class the knobs do not declare."""
MAX_SLO_CLASSES = 16
"""At most this many declared classes: each is a label value of several metric families."""
DEFAULT_SLO_CLASSES = ("interactive", "standard", "batch")

SLOClassName = Annotated[str, StringConstraints(min_length=1, max_length=63)]


def slo_class_label(name: str, declared: Collection[str]) -> str:
    """``name`` if declared, else ``other``: the bound on per-class state and metric labels."""
    return name if name in declared else OTHER_SLO_CLASS


class SLODefaults(_Doc):
    """SLO applied to requests that carry none in ``vllm_xargs``, and the declared classes."""

    slo_class: str = Field(
        default="standard", min_length=1, max_length=63, description="SLO class name."
    )
    ttft_ms: float = Field(default=1000.0, gt=0, description="Time-to-first-token target (ms).")
    tbt_ms: float = Field(
        default=100.0, gt=0, description="Mean time-per-output-token target (ms)."
    )
    slo_classes: list[SLOClassName] = Field(
        default_factory=lambda: list(DEFAULT_SLO_CLASSES),
        max_length=MAX_SLO_CLASSES,
        description="SLO classes requests may name in `vllm_xargs.slo_class` (the default "
        "class is always one); any other name is served with its targets but scheduled and "
        "counted as class `other`, so per-class state and metric labels stay bounded.",
    )

    @model_validator(mode="after")
    def _classes_distinct(self) -> Self:
        if len(set(self.slo_classes)) != len(self.slo_classes):
            raise ValueError("sloClasses must not repeat a name")
        if OTHER_SLO_CLASS in self.slo_classes or self.slo_class == OTHER_SLO_CLASS:
            raise ValueError(f"{OTHER_SLO_CLASS!r} is reserved for undeclared classes")
        return self

    def declared_classes(self) -> frozenset[str]:
        """The classes with their own label: ``sloClasses`` plus the default class."""
        return frozenset((*self.slo_classes, self.slo_class))


class Knobs(_Doc):
    """Scheduler knobs of one engine. Every field has a default, so ``{}`` is valid."""

    policy: PolicyName = Field(default="sloserve", description="Named scheduling policy.")
    reservation_ratio: float = Field(
        default=0.05,
        ge=0.0,
        le=0.5,
        description="Share of KV blocks held back from admissions as a global reserve.",
    )
    predictor_confidence: float = Field(
        default=0.9,
        ge=0.5,
        le=0.999,
        description="Probability that a request's output fits its KV reservation.",
    )
    chunk_min_tokens: int = Field(
        default=64, ge=1, le=65536, description="Smallest prefill chunk worth scheduling."
    )
    chunk_max_tokens: int = Field(
        default=8192, ge=1, le=65536, description="Largest prefill chunk per step."
    )
    preemption_mode: PreemptionModeName = Field(
        default="auto", description="auto picks swap or recompute by predicted latency."
    )
    slo_defaults: SLODefaults = Field(
        default_factory=SLODefaults, description="SLO for requests that carry none."
    )
    stall_bound_ms: float = Field(
        default=STALL_BOUND_MS_DEFAULT,
        gt=0,
        le=60_000,
        description="Strict attainment: the longest gap between two tokens of a request that "
        "still counts as attained (ms). Mean TPOT alone hides a stream that froze, then caught up.",
    )

    @model_validator(mode="after")
    def _chunk_bounds_ordered(self) -> Self:
        if self.chunk_min_tokens > self.chunk_max_tokens:
            raise ValueError("chunkMinTokens must not exceed chunkMaxTokens")
        return self

    def canonical_json(self) -> str:
        """Stable serialisation: the input of :meth:`revision`."""
        return json.dumps(self.model_dump(by_alias=True), sort_keys=True, separators=(",", ":"))

    def revision(self) -> int:
        """Content hash as a 32-bit integer: exportable as a Prometheus gauge."""
        return int(hashlib.sha256(self.canonical_json().encode()).hexdigest()[:8], 16)

    def to_policy_knobs(self) -> PolicyKnobs:
        """The plain values policies read."""
        mode = None if self.preemption_mode == "auto" else PreemptionMode(self.preemption_mode)
        return PolicyKnobs(
            reservation_ratio=self.reservation_ratio,
            predictor_confidence=self.predictor_confidence,
            chunk_min_tokens=self.chunk_min_tokens,
            chunk_max_tokens=self.chunk_max_tokens,
            preemption_mode=mode,
            default_slo=SLOTarget(
                slo_class=self.slo_defaults.slo_class,
                ttft_s=self.slo_defaults.ttft_ms / 1000.0,
                tbt_s=self.slo_defaults.tbt_ms / 1000.0,
            ),
            stall_bound_s=self.stall_bound_ms / 1000.0,
        )


class KnobsState(_Doc):
    """What ``GET /sloserve/knobs`` returns: the document in force and its revision."""

    revision: int
    knobs: Knobs
