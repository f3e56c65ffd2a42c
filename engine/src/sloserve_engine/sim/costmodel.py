"""The simulator's GPU profile: the shared step-time model plus what only the simulator needs.

The step-time coefficients follow the policies' ``sloserve.costmodel/v1`` schema
(:mod:`sloserve_engine.policy.costmodel`), so policies plan with the same machine
the simulator runs. The simulator also needs how long a step takes under asynchronous
scheduling relative to the synchronously logged one (host work overlaps the
previous batch); that lives in the profile file's top-level ``"sim"`` section,
which the policy loader ignores.
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
    """Host time per step inside a synchronously logged step (input preparation, output
    processing) that async scheduling overlaps with the previous batch."""
    name: str = DEFAULT_PROFILE

    def async_step_s(self, gpu_s: float, n_reqs: int) -> float:
        """Duration of an async step; the host work of scheduling the next batch overlaps it
        but can still be the bottleneck."""
        return max(gpu_s - self.async_hidden_step_s, self.step.cpu_step_s(n_reqs))


def profile_from_json(doc: dict[str, Any], name: str = DEFAULT_PROFILE) -> SimProfile:
    step = cost_model_from_json(doc)
    sim = doc.get("sim", {})
    if not isinstance(sim, dict):
        raise CostModelError("'sim' must be an object")
    unknown = sorted(set(sim) - {"async_hidden_step_s"})
    if unknown:
        raise CostModelError(f"unknown keys in 'sim': {', '.join(unknown)}")
    hidden = float(sim.get("async_hidden_step_s", 0.0))
    if not 0 <= hidden < step.c0_s:
        raise CostModelError("sim.async_hidden_step_s must be in [0, coefficients.c0_s)")
    return SimProfile(step, hidden, name)


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
