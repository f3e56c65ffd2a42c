"""Discrete-event simulator: vLLM 0.26.0's scheduler loop on a modelled GPU."""

from .costmodel import StepCostModel, load_cost_model
from .engine import EngineStats, SimConfig, SimEngine, StepResult

__all__ = [
    "EngineStats",
    "SimConfig",
    "SimEngine",
    "StepCostModel",
    "StepResult",
    "load_cost_model",
]
