"""The simulator's GPU profile: the shared step-time model plus what only the simulator needs.

The step-time coefficients follow the policies' ``sloserve.costmodel/v1`` schema
(:mod:`sloserve_engine.policy.costmodel`), so policies plan with the same machine
the simulator runs. The simulator also needs how much of a synchronously logged
step asynchronous scheduling hides (input preparation and output processing run
on the CPU while the GPU executes the previous batch); that lives in the
profile file's top-level ``"sim"`` section, which the policy loader ignores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..policy.costmodel import COSTMODEL_DIR, CostModelError, StepCostModel, cost_model_from_json

DEFAULT_PROFILE = "h200-llama-3.1-8b"


@dataclass(frozen=True, slots=True)
class SimProfile:
    """A GPU × model profile as the simulator uses it."""

    step: StepCostModel
    async_hidden_step_s: float = 0.0
    """Host time per step inside a synchronously logged step that async scheduling overlaps."""
    async_hidden_request_s: float = 0.0
    """The same, per scheduled request."""
    name: str = DEFAULT_PROFILE

    def async_step_s(self, gpu_s: float, n_reqs: int) -> float:
        """Duration of an async step: GPU time without the overlapped host work, at least the
        host time of scheduling the next batch (the CPU can still be the bottleneck)."""
        hidden = self.async_hidden_step_s + self.async_hidden_request_s * n_reqs
        return max(gpu_s - hidden, self.step.cpu_step_s(n_reqs) + hidden)


def profile_from_json(doc: dict[str, Any], name: str = DEFAULT_PROFILE) -> SimProfile:
    step = cost_model_from_json(doc)
    sim = doc.get("sim", {})
    if not isinstance(sim, dict):
        raise CostModelError("'sim' must be an object")
    unknown = sorted(set(sim) - {"async_hidden_step_s", "async_hidden_request_s"})
    if unknown:
        raise CostModelError(f"unknown keys in 'sim': {', '.join(unknown)}")
    return SimProfile(
        step,
        float(sim.get("async_hidden_step_s", 0.0)),
        float(sim.get("async_hidden_request_s", 0.0)),
        name,
    )


def profile_path(profile: str) -> Path:
    return COSTMODEL_DIR / f"{profile}.json"


def load_profile(profile_or_path: str = DEFAULT_PROFILE) -> SimProfile:
    """Load a shipped profile by name (``h200-llama-3.1-8b``) or any profile JSON by path."""
    path = Path(profile_or_path)
    if path.suffix != ".json":
        path = profile_path(profile_or_path)
    if not path.is_file():
        known = sorted(p.stem for p in COSTMODEL_DIR.glob("*.json"))
        raise CostModelError(f"unknown cost-model profile {profile_or_path!r}; known: {known}")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CostModelError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise CostModelError(f"{path}: top level must be an object")
    return profile_from_json(doc, path.stem)
