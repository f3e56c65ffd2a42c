"""Per-request SLO targets from ``vllm_xargs`` (``SamplingParams.extra_args``).

Pure and vLLM-free so the engine server can validate a completion body with
the same rules (and answer 4xx) before the request ever reaches the engine core,
where an exception would take the whole engine down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..policy.views import SLOTarget

SLO_CLASS_KEY = "slo_class"
TTFT_MS_KEY = "ttft_ms"
TBT_MS_KEY = "tbt_ms"


class InvalidSLOError(ValueError):
    """A ``vllm_xargs`` SLO field that is not usable; the message names the field."""


def _positive_ms(extra_args: Mapping[str, object], key: str) -> float | None:
    raw = extra_args.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise InvalidSLOError(f"vllm_xargs.{key} must be a positive number of ms, got {raw!r}")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidSLOError(
            f"vllm_xargs.{key} must be a positive number of ms, got {raw!r}"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise InvalidSLOError(f"vllm_xargs.{key} must be a positive number of ms, got {raw!r}")
    return value


def parse_slo(extra_args: Mapping[str, object] | None, default: SLOTarget) -> SLOTarget:
    """The request's SLO: fields it carries override ``default`` one by one."""
    if not extra_args:
        return default
    slo_class = extra_args.get(SLO_CLASS_KEY, default.slo_class)
    if not isinstance(slo_class, str) or not 0 < len(slo_class) <= 63:
        raise InvalidSLOError(
            f"vllm_xargs.{SLO_CLASS_KEY} must be a string of 1-63 characters, got {slo_class!r}"
        )
    ttft_ms = _positive_ms(extra_args, TTFT_MS_KEY)
    tbt_ms = _positive_ms(extra_args, TBT_MS_KEY)
    return SLOTarget(
        slo_class=slo_class,
        ttft_s=default.ttft_s if ttft_ms is None else ttft_ms / 1000.0,
        tbt_s=default.tbt_s if tbt_ms is None else tbt_ms / 1000.0,
    )
