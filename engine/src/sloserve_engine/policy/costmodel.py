"""Step-time cost model: what one engine step costs, from what it schedules.

Policies use it to size prefill chunks against TBT SLOs (AccelGen C1), to
estimate remaining time (deadline ordering, victim scoring) and to compare
swap with recompute (CacheOPT C5); the simulator uses the same numbers to
advance its clock, so a policy never plans with a different machine than the
one it is measured on.

The coefficients live in JSON data files, one per GPU × model, at
``sloserve_engine/data/costmodels/<gpu>-<model>.json``, fitted from GPU step logs by
``sloserve bench fit`` (the command and its input: docs/benchmarks.md, "Cost model"). Schema
``sloserve.costmodel/v1``, every coefficient in seconds::

    {
      "schema": "sloserve.costmodel/v1",
      "gpu": "h200",                      # free text, names the file
      "model": "llama-3.1-8b",            # free text, names the file
      "coefficients": {
        "c0_s": 0.00596,                  # fixed GPU time of any non-empty step
        "prefill_token_s": 2.22e-05,      # per prefill (or chunk) token scheduled
        "prefill_ctx_s": 0.0,             # per token of prefill context (computed + chunk)
        "prefill_attn_s": 0.0,            # optional: per attention pair of a prefill chunk
        "decode_seq_s": 2.22e-05,         # per decode request in the step
        "decode_ctx_s": 0.0               # per token of decode context (sum over decodes)
      },
      "cpu": {                            # optional: host time outside the GPU step
        "per_step_s": 0.0,                # scheduling/bookkeeping per step
        "per_request_s": 0.0              # per scheduled request
      },
      "kv": {                             # optional: swap path (CacheOPT C5)
        "bytes_per_token": 131072,        # Llama-3.1-8B bf16: 2*32 layers*8 kv heads*128*2 B
        "d2h_bytes_per_s": 2.5e10,        # GPU -> host
        "h2d_bytes_per_s": 2.5e10         # host -> GPU
      },
      "fit": {"source": "...", "median_rel_error": 0.034, "n_steps": 12345}   # optional, free
    }

Unknown top-level keys are ignored (forward compatible); unknown keys inside
``coefficients``, ``cpu`` and ``kv`` are errors, so a typo never silently
becomes a zero.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

SCHEMA = "sloserve.costmodel/v1"

LLAMA_3_1_8B_BF16_KV_BYTES_PER_TOKEN = 2 * 32 * 8 * 128 * 2
"""K and V × 32 layers × 8 KV heads × head_dim 128 × 2 bytes (bf16) = 131072."""

DEFAULT_PCIE_BYTES_PER_S = 25e9
"""Effective host<->GPU copy bandwidth per direction (PCIe Gen5 x16, pinned memory)."""


class CostModelError(ValueError):
    """A cost-model file that does not follow the ``sloserve.costmodel/v1`` schema."""


def attention_pairs(chunk: int, prior: int) -> int:
    """Query-key pairs of a causal prefill chunk of ``chunk`` tokens after ``prior`` computed.

    The quadratic part of prefill cost: every chunk token attends to the ``prior``
    tokens and to the chunk tokens before it. Feature ``prefill_attn`` of a step is
    the sum over its prefill chunks.
    """
    if chunk <= 0:
        return 0
    return chunk * prior + chunk * (chunk + 1) // 2


@dataclass(frozen=True, slots=True)
class StepCostModel:
    """``step = c0 + c_pf*pf + c_pctx*pf_ctx + c_attn*pf_attn + c_dec*decodes + c_dctx*dec_ctx``.

    Linear in the features except ``pf_attn`` (:func:`attention_pairs`), attention's
    quadratic term: without it a 4,000-token chunk late in a 7,000-token prompt costs
    ~15 % more on the H200 than predicted (prefill sweep: 8,000 tokens 21 % over the
    linear model), which is what pushed long-prompt steps over a 100 ms TBT target.
    Still inverted in O(1) for chunk sizing (a quadratic equation).
    """

    c0_s: float
    prefill_token_s: float
    prefill_ctx_s: float = 0.0
    decode_seq_s: float = 0.0
    decode_ctx_s: float = 0.0
    prefill_attn_s: float = 0.0
    """Per query-key pair of prefill attention (:func:`attention_pairs`); 0 = linear model."""
    cpu_per_step_s: float = 0.0
    """Host time per step outside the GPU step (overlapped by async scheduling)."""
    cpu_per_request_s: float = 0.0
    """Host time per scheduled request (overlapped by async scheduling)."""
    kv_bytes_per_token: int = LLAMA_3_1_8B_BF16_KV_BYTES_PER_TOKEN
    d2h_bytes_per_s: float = DEFAULT_PCIE_BYTES_PER_S
    h2d_bytes_per_s: float = DEFAULT_PCIE_BYTES_PER_S
    gpu: str = "unknown"
    model: str = "unknown"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and value < 0:
                raise CostModelError(f"{f.name} must be >= 0, got {value}")
        if self.d2h_bytes_per_s <= 0 or self.h2d_bytes_per_s <= 0:
            raise CostModelError("swap bandwidths must be > 0")

    def gpu_step_s(
        self,
        prefill_tokens: int,
        prefill_ctx: int,
        decode_count: int,
        decode_ctx_sum: int,
        prefill_attn: int = 0,
    ) -> float:
        """GPU time of one step; 0 for an empty step.

        ``prefill_attn`` is the step's sum of :func:`attention_pairs` over its chunks.
        """
        if prefill_tokens == 0 and decode_count == 0:
            return 0.0
        return (
            self.c0_s
            + self.prefill_token_s * prefill_tokens
            + self.prefill_ctx_s * prefill_ctx
            + self.prefill_attn_s * prefill_attn
            + self.decode_seq_s * decode_count
            + self.decode_ctx_s * decode_ctx_sum
        )

    def cpu_step_s(self, scheduled_requests: int) -> float:
        """Host time of one step (the simulator adds it unless scheduling is async)."""
        if scheduled_requests == 0:
            return 0.0
        return self.cpu_per_step_s + self.cpu_per_request_s * scheduled_requests

    def max_prefill_tokens(
        self,
        step_limit_s: float,
        decode_count: int,
        decode_ctx_sum: int,
        prior_prefill_ctx: int = 0,
    ) -> int:
        """Largest prefill token count ``C`` whose step stays within ``step_limit_s``.

        ``C`` is one chunk of a request with ``prior_prefill_ctx`` tokens computed: its
        prefill context is ``prior + C`` and its attention pairs
        ``attention_pairs(C, prior)``, so the step is quadratic in ``C``.
        """
        prior = prior_prefill_ctx
        fixed = (
            self.c0_s
            + self.prefill_ctx_s * prior
            + self.decode_seq_s * decode_count
            + self.decode_ctx_s * decode_ctx_sum
        )
        slack = step_limit_s - fixed
        if slack <= 0:
            return 0
        q = self.prefill_attn_s
        # slack >= a*C^2 + b*C with a = q/2, b = per-token cost + q*(prior + 1/2)
        b = self.prefill_token_s + self.prefill_ctx_s + q * (prior + 0.5)
        if q <= 0:
            return int(slack / b) if b > 0 else 1 << 30
        c = int((math.sqrt(b * b + 2.0 * q * slack) - b) / q)
        while c > 0 and self._chunk_s(c, prior) > slack:
            c -= 1  # float rounding of the root
        while self._chunk_s(c + 1, prior) <= slack:
            c += 1
        return c

    def _chunk_s(self, chunk: int, prior: int) -> float:
        """Variable cost of one chunk (what :meth:`max_prefill_tokens` fits into the slack)."""
        return (
            self.prefill_token_s + self.prefill_ctx_s
        ) * chunk + self.prefill_attn_s * attention_pairs(chunk, prior)

    def prefill_s(self, tokens: int) -> float:
        """Time to recompute ``tokens`` of context as one prefill (recompute preemption)."""
        if tokens <= 0:
            return 0.0
        return self.c0_s + self._chunk_s(tokens, 0)

    def swap_s(self, tokens: int) -> float:
        """Round-trip time to copy ``tokens`` of KV to the host and back (swap preemption)."""
        size = tokens * self.kv_bytes_per_token
        return size / self.d2h_bytes_per_s + size / self.h2d_bytes_per_s

    def to_json(self) -> dict[str, Any]:
        """The ``sloserve.costmodel/v1`` document of this model."""
        return {
            "schema": SCHEMA,
            "gpu": self.gpu,
            "model": self.model,
            "coefficients": {
                "c0_s": self.c0_s,
                "prefill_token_s": self.prefill_token_s,
                "prefill_ctx_s": self.prefill_ctx_s,
                "decode_seq_s": self.decode_seq_s,
                "decode_ctx_s": self.decode_ctx_s,
                "prefill_attn_s": self.prefill_attn_s,
            },
            "cpu": {"per_step_s": self.cpu_per_step_s, "per_request_s": self.cpu_per_request_s},
            "kv": {
                "bytes_per_token": self.kv_bytes_per_token,
                "d2h_bytes_per_s": self.d2h_bytes_per_s,
                "h2d_bytes_per_s": self.h2d_bytes_per_s,
            },
        }


_COEFFICIENTS = {
    "c0_s": "c0_s",
    "prefill_token_s": "prefill_token_s",
    "prefill_ctx_s": "prefill_ctx_s",
    "decode_seq_s": "decode_seq_s",
    "decode_ctx_s": "decode_ctx_s",
    "prefill_attn_s": "prefill_attn_s",
}
_CPU = {"per_step_s": "cpu_per_step_s", "per_request_s": "cpu_per_request_s"}
_KV = {
    "bytes_per_token": "kv_bytes_per_token",
    "d2h_bytes_per_s": "d2h_bytes_per_s",
    "h2d_bytes_per_s": "h2d_bytes_per_s",
}


def _section(
    doc: dict[str, Any], name: str, keys: dict[str, str], required: bool
) -> dict[str, Any]:
    raw = doc.get(name)
    if raw is None:
        if required:
            raise CostModelError(f"missing section {name!r}")
        return {}
    if not isinstance(raw, dict):
        raise CostModelError(f"{name!r} must be an object")
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise CostModelError(f"unknown keys in {name!r}: {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for key, attr in keys.items():
        if key not in raw:
            continue
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CostModelError(f"{name}.{key} must be a number, got {value!r}")
        out[attr] = int(value) if attr == "kv_bytes_per_token" else float(value)
    return out


def cost_model_from_json(doc: dict[str, Any]) -> StepCostModel:
    """Parse a ``sloserve.costmodel/v1`` document; errors name the offending key."""
    if doc.get("schema") != SCHEMA:
        raise CostModelError(f"schema must be {SCHEMA!r}, got {doc.get('schema')!r}")
    coeffs = _section(doc, "coefficients", _COEFFICIENTS, required=True)
    for key in ("c0_s", "prefill_token_s"):
        if key not in coeffs:
            raise CostModelError(f"coefficients.{key} is required")
    return StepCostModel(
        **coeffs,
        **_section(doc, "cpu", _CPU, required=False),
        **_section(doc, "kv", _KV, required=False),
        gpu=str(doc.get("gpu", "unknown")),
        model=str(doc.get("model", "unknown")),
    )


def load_cost_model(path: Path) -> StepCostModel:
    """Read a cost-model JSON file."""
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CostModelError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise CostModelError(f"{path}: top level must be an object")
    try:
        return cost_model_from_json(doc)
    except CostModelError as exc:
        raise CostModelError(f"{path}: {exc}") from exc


GPU_PROFILE_H200_LLAMA_8B = StepCostModel(
    c0_s=0.00596,
    prefill_token_s=22.2e-6,
    decode_seq_s=22.2e-6,
    gpu="h200",
    model="llama-3.1-8b",
)
"""Linear fit of the GPU baseline step logs (gpu/README.md): 5.96 ms + 22.2 µs per token.

Used until the simulator engineer's fitted ``data/costmodels`` file exists.
"""


COSTMODEL_DIR = Path(__file__).resolve().parent.parent / "data" / "costmodels"
"""Where the fitted ``<gpu>-<model>.json`` files live."""


def cost_model_for(profile: str = "h200-llama-3.1-8b") -> StepCostModel:
    """The fitted model for ``profile`` if its file exists, else the GPU README profile."""
    path = COSTMODEL_DIR / f"{profile}.json"
    if path.exists():
        return load_cost_model(path)
    if profile == "h200-llama-3.1-8b":
        return GPU_PROFILE_H200_LLAMA_8B
    raise CostModelError(f"no cost model for profile {profile!r} (looked for {path})")
