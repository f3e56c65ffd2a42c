"""Step-time cost model: how long one engine step takes on a given GPU × model.

The simulator needs one number per step, computed from the four quantities the
GPU step logs record (``../shared/gpu/baseline/steps_*.csv``), so the model can
be fitted on exactly what was measured. Coefficients live in a JSON data file
per GPU × model (``sloserve_engine/data/costmodels/<profile>.json``), written by
:mod:`sloserve_engine.sim.fit`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

DEFAULT_PROFILE = "h200-llama-3.1-8b"


@dataclass(frozen=True, slots=True)
class StepCostModel:
    """Linear step-time model in seconds (all coefficients per unit of their feature).

    ``gpu = base + per_prefill_token * prefill_tokens + per_prefill_ctx * prefill_ctx_sum
    + per_decode * n_decode + per_decode_ctx * decode_ctx_sum``. Synchronous
    scheduling adds a CPU gap per step (``cpu_base + cpu_per_req * n_reqs``) that
    asynchronous scheduling hides behind the GPU step; asynchronous steps run
    ``async_saving`` faster because output processing overlaps the next step.
    """

    base: float
    per_prefill_token: float
    per_prefill_ctx: float
    per_decode: float
    per_decode_ctx: float
    cpu_base: float = 0.0
    cpu_per_req: float = 0.0
    async_saving: float = 0.0
    swap_bytes_per_token: int = 131_072
    """KV bytes per token (Llama-3.1-8B bf16: 2 × 32 layers × 8 heads × 128 × 2 B)."""
    swap_bandwidth: float = 25e9
    """Host↔GPU copy bandwidth for swap preemption, bytes/s (PCIe 5 x16, effective)."""
    profile: str = DEFAULT_PROFILE

    def gpu_time(
        self, prefill_tokens: int, prefill_ctx_sum: int, n_decode: int, decode_ctx_sum: int
    ) -> float:
        """Model execution + sampling + output handling of one step, as logged in sync mode."""
        return (
            self.base
            + self.per_prefill_token * prefill_tokens
            + self.per_prefill_ctx * prefill_ctx_sum
            + self.per_decode * n_decode
            + self.per_decode_ctx * decode_ctx_sum
        )

    def cpu_time(self, n_reqs: int) -> float:
        """CPU scheduling/bookkeeping between two synchronous steps."""
        return self.cpu_base + self.cpu_per_req * n_reqs

    def swap_time(self, tokens: int) -> float:
        """One-way KV copy time for ``tokens`` tokens."""
        return tokens * self.swap_bytes_per_token / self.swap_bandwidth

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StepCostModel:
        data = json.loads(text)
        return cls(**data)


def load_cost_model(profile_or_path: str = DEFAULT_PROFILE) -> StepCostModel:
    """Load a profile shipped in the package (by name) or a JSON file (by path)."""
    path = Path(profile_or_path)
    if path.suffix == ".json" and path.exists():
        return StepCostModel.from_json(path.read_text())
    data_dir = resources.files("sloserve_engine") / "data" / "costmodels"
    candidate = data_dir / f"{profile_or_path}.json"
    if not candidate.is_file():
        known = sorted(p.name.removesuffix(".json") for p in data_dir.iterdir())
        raise ValueError(f"unknown cost-model profile {profile_or_path!r}; known: {known}")
    return StepCostModel.from_json(candidate.read_text())
