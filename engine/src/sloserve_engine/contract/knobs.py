"""The live-knob document: what the operator writes and every engine applies between steps.

One model, one parser and one writer serve every reader: the engine's admin
API (``PUT /sloserve/knobs``), the mounted knobs file a pod starts from, the
runtime file the scheduler in vLLM's engine core polls, the operator (which
renders ``spec.scheduler`` + ``spec.slo`` into it and copies its bounds into
the CRD) and the policies, which read the same object. Field names are
camelCase on the wire to match the ``LLMService`` spec.

Validation is strict: a number is a finite JSON number of the declared type
(``"5"``, ``true`` and ``1e309`` are refused, not coerced), an unknown or
snake_case key is refused, and every error names the field in its camelCase
wire form. The revision is content-addressed (a hash of the canonical
document), so the operator and every engine agree on it without shared state
and re-applying the same spec is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from .attainment import STALL_BOUND_MS_DEFAULT
from .slo import (
    DEFAULT_SLO_CLASSES,
    MAX_SLO_CLASSES,
    OTHER_SLO_CLASS,
    SLO,
    SLOClass,
    error_message,
)

PolicyName = Literal["vllm", "ecoserve", "cacheopt", "accelgen", "sloserve"]
POLICY_NAMES: tuple[str, ...] = PolicyName.__args__  # type: ignore[attr-defined]
"""Named policies, in the order they are usually compared; ``sloserve`` is the default."""
PreemptionModeName = Literal["auto", "recompute", "swap"]


class SLODefaults(SLO):
    """The SLO of requests that carry none, and the SLO classes requests may name.

    The targets are :class:`SLO`'s own fields (declared once there); the class
    list is a knob, not part of any request's SLO.
    """

    slo_classes: tuple[SLOClass, ...] = Field(
        default=DEFAULT_SLO_CLASSES,
        max_length=MAX_SLO_CLASSES,
        strict=False,  # a list is a tuple here (JSON has no tuples); items stay strict str
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

    @classmethod
    def of(cls, slo: SLO) -> SLODefaults:
        """``slo`` as the default, with the default class list."""
        return cls(slo_class=slo.slo_class, ttft_ms=slo.ttft_ms, tbt_ms=slo.tbt_ms)

    def declared_classes(self) -> frozenset[str]:
        """The classes with their own label: ``sloClasses`` plus the default class."""
        return frozenset((*self.slo_classes, self.slo_class))


class Knobs(BaseModel):
    """Scheduler knobs of one engine. Every field has a default, so ``{}`` is valid."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
    )

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

    @cached_property
    def stall_bound_s(self) -> float:
        """:attr:`stall_bound_ms` in seconds (what attainment is judged with)."""
        return self.stall_bound_ms / 1000.0

    def canonical_json(self) -> str:
        """Stable serialisation: the input of :meth:`revision`."""
        return json.dumps(self.model_dump(by_alias=True), sort_keys=True, separators=(",", ":"))

    def revision(self) -> int:
        """Content hash as a 32-bit integer: exportable as a Prometheus gauge."""
        return int(hashlib.sha256(self.canonical_json().encode()).hexdigest()[:8], 16)


DEFAULT_KNOBS = Knobs()
"""The defaults, for config types that derive theirs from a knob (e.g. the KV gate's reserve)."""


class KnobsState(BaseModel):
    """What ``GET /sloserve/knobs`` returns: the document in force and its revision."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    revision: int
    knobs: Knobs

    @classmethod
    def of(cls, knobs: Knobs) -> KnobsState:
        return cls(revision=knobs.revision(), knobs=knobs)

    def to_json(self) -> dict[str, object]:
        """The wire form (camelCase), as GET and PUT return it and the status file holds."""
        return self.model_dump(mode="json", by_alias=True)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in a knobs document, located by its wire (camelCase) field path."""

    field: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class InvalidKnobsError(ValueError):
    """A knobs document that cannot be applied; ``errors`` name the fields."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def _wire_name(model: type[BaseModel], name: str) -> str | None:
    """The camelCase wire name of a snake_case field name, if ``model`` has that field."""
    info = model.model_fields.get(name)
    return info.alias if info is not None else None


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic errors as (wire path, message); document-level errors are ``(document)``."""
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(document)"
        message = error_message(err)
        if err["type"] == "extra_forbidden":
            model: type[BaseModel] = SLODefaults if len(err["loc"]) > 1 else Knobs
            wire = _wire_name(model, str(err["loc"][-1]))
            message = f"unknown field; did you mean {wire}?" if wire else "unknown field"
        elif err["type"] == "value_error":
            message = str(err["msg"]).removeprefix("Value error, ")
        out.append(FieldError(path, message))
    return out


def parse_knobs(raw: str | bytes | Mapping[str, object], origin: str | None = None) -> Knobs:
    """The one parser of a knobs document (JSON text or decoded JSON), by wire names only.

    Raises :class:`InvalidKnobsError` naming each bad field, prefixed by ``origin``
    (e.g. a file path) when given.
    """
    try:
        if isinstance(raw, Mapping):
            return Knobs.model_validate(dict(raw), by_alias=True, by_name=False)
        return Knobs.model_validate_json(raw, by_alias=True, by_name=False)
    except ValidationError as exc:
        errors = field_errors(exc)
        if origin is not None:
            errors = [FieldError(f"{origin}: {e.field}", e.message) for e in errors]
        raise InvalidKnobsError(errors) from None


def load_knobs_file(path: Path) -> Knobs:
    """A knobs document from a file; errors say which file and field."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidKnobsError([FieldError(str(path), f"unreadable: {exc.strerror}")]) from None
    return parse_knobs(raw, str(path))


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory and rename over ``path``.

    Readers (the scheduler polling the knobs file, the server reading the
    applied state) therefore never see half a document.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_knobs(path: Path, knobs: Knobs) -> None:
    """Publish a document for a reader that polls ``path`` (canonical JSON, atomically)."""
    write_atomically(path, knobs.canonical_json() + "\n")


def write_knobs_state(path: Path, knobs: Knobs) -> None:
    """Publish the applied :class:`KnobsState` (atomically)."""
    write_atomically(path, json.dumps(KnobsState.of(knobs).to_json()))
