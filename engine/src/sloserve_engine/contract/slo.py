"""A request's service-level objective: the one type, its bounds and the one request parser.

The same :class:`SLO` is the engine's default SLO in the knobs document
(``sloDefaults``, camelCase), a request's SLO in ``vllm_xargs`` (``slo_class``,
``ttft_ms``, ``tbt_ms``, as vLLM names extra args) and what policies, the
simulator and the metrics read (``ttft_s``/``tbt_s``). Targets travel in
milliseconds because that is what people write; policies plan in seconds.

:func:`parse_slo` is the only parser of a request's SLO. Both engine modes
call it before a request is admitted (the simulated server in its completions
handler, the real-mode proxy before it forwards to vLLM), so a bad value is a
400 naming the field in both, and never reaches a policy.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import cached_property
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

SLO_CLASS_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
"""A Kubernetes label value of 1-63 characters: classes become Prometheus label values."""
MAX_TARGET_MS = 3_600_000.0
"""Largest TTFT or TBT target (one hour): finite, so slack arithmetic never overflows."""

SLO_CLASS_RULE = "1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
SLOClass = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=SLO_CLASS_PATTERN)]


OTHER_SLO_CLASS = "other"
"""The class of every request that names an SLO class the knobs do not declare."""
MAX_SLO_CLASSES = 16
"""At most this many declared classes: each is a label value of several metric families."""
DEFAULT_SLO_CLASSES = ("interactive", "standard", "batch")
"""Classes declared when the knobs name none (``sloDefaults.sloClasses``)."""


def slo_class_label(name: str, declared: Collection[str]) -> str:
    """``name`` if declared, else ``other``: the bound on per-class state and metric labels."""
    return name if name in declared else OTHER_SLO_CLASS


class SLO(BaseModel):
    """Targets one request is measured against; every field has a default."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
    )

    slo_class: SLOClass = Field(
        default="standard",
        description=f"SLO class name: {SLO_CLASS_RULE}.",
    )
    ttft_ms: float = Field(
        default=1000.0, gt=0, le=MAX_TARGET_MS, description="Time-to-first-token target (ms)."
    )
    tbt_ms: float = Field(
        default=100.0,
        gt=0,
        le=MAX_TARGET_MS,
        description="Mean time-per-output-token target (ms).",
    )

    @cached_property
    def ttft_s(self) -> float:
        """Time-to-first-token target in seconds (what policies plan with)."""
        return self.ttft_ms / 1000.0

    @cached_property
    def tbt_s(self) -> float:
        """Mean time-per-output-token target in seconds."""
        return self.tbt_ms / 1000.0


REQUEST_FIELDS = tuple(SLO.model_fields)
"""``vllm_xargs`` keys a request may set: ``slo_class``, ``ttft_ms``, ``tbt_ms``."""


class InvalidSLOError(ValueError):
    """A request SLO that cannot be used; ``field`` is its path in the request body."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_slo(xargs: Mapping[str, object] | None, default: SLO) -> SLO:
    """The request's SLO: the ``vllm_xargs`` fields it carries override ``default`` one by one.

    Strict: a target is a JSON number (not a string, not a boolean), finite and
    in ``(0, MAX_TARGET_MS]``; other ``vllm_xargs`` keys are not ours and are ignored.
    Raises :class:`InvalidSLOError` naming the first bad field as ``vllm_xargs.<key>``.
    """
    if not xargs:
        return default
    overrides = {key: xargs[key] for key in REQUEST_FIELDS if key in xargs}
    if not overrides:
        return default
    base = {key: getattr(default, key) for key in REQUEST_FIELDS}
    try:
        return SLO.model_validate({**base, **overrides}, by_alias=False, by_name=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise InvalidSLOError(f"vllm_xargs.{key}", error_message(first)) from None


def error_message(error: Mapping[str, object]) -> str:
    """A pydantic error as a sentence about the value (truncated: bodies may be huge)."""
    shown = repr(error["input"])
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    if error["type"] == "string_pattern_mismatch":
        return f"must be {SLO_CLASS_RULE}, got {shown}"
    return f"{error['msg']}, got {shown}"
